# Lastmile: the README's commands. Everything installs into ./.venv from uv.lock.
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV := .venv
BIN := $(VENV)/bin
# The test suite runs against real services: PostgreSQL and a Redis broker.
export LASTMILE_TEST_DATABASE_URL ?= postgresql://root@127.0.0.1:5432/test
export LASTMILE_TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run test lint bench migrate schema clean

ASSETS := services/api/static

install: $(BIN)/lastmile $(ASSETS)/node_modules/.package-lock.json

$(BIN)/lastmile: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

# Browser assets (GraphiQL) come from npm at install time; the API never loads a CDN.
$(ASSETS)/node_modules/.package-lock.json: $(ASSETS)/package.json $(ASSETS)/package-lock.json
	cd $(ASSETS) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

run: install
	infra/local/run.sh

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services

# The VRPTW benchmark instances are not part of the product: BENCHMARKS_DIR names their
# directory (benchmarks/planner/run.py).
bench: install
	$(BIN)/python benchmarks/planner/run.py --suite solomon --time-limit 10

# The committed SDL that integrators read; a test fails when it drifts from the code.
schema: install
	$(BIN)/python -c "from services.api.graphql.schema import schema; print(schema.as_str())" > schema.graphql

migrate: install
	$(BIN)/lastmile migrate

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache $(ASSETS)/node_modules
