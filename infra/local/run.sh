#!/usr/bin/env bash
# The whole product on one machine with embedded defaults (SQLite and a SQLite-backed
# broker under ./var, no servers needed): migrate, seed the demo, then run the API,
# a Celery worker and the scheduler until Ctrl-C. Set LASTMILE_DATABASE_URL (with
# LASTMILE_MERCHANT_DATABASE_URL and LASTMILE_MIGRATION_DATABASE_URL, see the README) and
# LASTMILE_BROKER_URL first to run the same topology on PostgreSQL and Redis/RabbitMQ.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.venv/bin
host=${LASTMILE_HOST:-127.0.0.1}
port=${LASTMILE_PORT:-8000}
export LASTMILE_ISSUER=${LASTMILE_ISSUER:-http://$host:$port}
# A development machine: webhook receivers (docs/example_client.py) run on localhost.
export LASTMILE_WEBHOOK_PRIVATE_TARGETS=${LASTMILE_WEBHOOK_PRIVATE_TARGETS:-true}
mkdir -p var

"$bin/lastmile" migrate
"$bin/lastmile" seed --demo --json > var/demo-credentials.json

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/lastmile" serve --host "$host" --port "$port" > var/api.log 2>&1 & pids+=($!)
"$bin/lastmile" worker --concurrency 1 > var/worker.log 2>&1 & pids+=($!)
"$bin/lastmile" scheduler > var/scheduler.log 2>&1 & pids+=($!)

for _ in $(seq 1 60); do
  if "$bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://$host:$port/healthz')" 2>/dev/null; then
    break
  fi
  sleep 0.5
done

cat <<MSG

Lastmile is running (logs in var/*.log; Ctrl-C stops everything).
  API health      http://$host:$port/healthz
  GraphQL         http://$host:$port/graphql   (GraphiQL in a browser; send a Bearer token)
  GraphQL schema  http://$host:$port/graphql/schema.graphql
  OAuth token     POST http://$host:$port/oauth/token  (client_credentials, HTTP Basic)
  Credentials     var/demo-credentials.json:
MSG
"$bin/python" - <<'PY'
import json
seed = json.load(open("var/demo-credentials.json"))
for m in seed["merchants"]:
    print(f"    merchant {m['name']}: {m['client_id']} / {m['client_secret']}")
print(f"    operator: {seed['operator']['client_id']} / {seed['operator']['client_secret']}")
PY
wait -n "${pids[@]}"
