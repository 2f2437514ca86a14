#!/usr/bin/env bash
# The whole product on one machine with embedded defaults (SQLite and a SQLite-backed
# broker under ./var, no servers needed): migrate, seed the demo, then run the API,
# a Celery worker and the scheduler until Ctrl-C. Set LASTMILE_DATABASE_URL (with
# LASTMILE_MERCHANT_DATABASE_URL and LASTMILE_MIGRATION_DATABASE_URL, see the README) and
# LASTMILE_BROKER_URL first to run the same topology on PostgreSQL and Redis/RabbitMQ.
#
# Other knobs: LASTMILE_HOST and LASTMILE_PORT (the API's address), LASTMILE_VAR_DIR
# (state and logs, default ./var), LASTMILE_START_TIMEOUT (seconds the API has to
# answer /healthz, default 60). If any step or process fails, or the API does not
# come up in time, it says which, shows the end of its log, stops everything and
# exits non-zero. Ctrl-C stops everything at any moment.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.venv/bin
host=${LASTMILE_HOST:-127.0.0.1}
port=${LASTMILE_PORT:-8000}
start_timeout=${LASTMILE_START_TIMEOUT:-60}
export LASTMILE_VAR_DIR=${LASTMILE_VAR_DIR:-var}
var=$LASTMILE_VAR_DIR
export LASTMILE_ISSUER=${LASTMILE_ISSUER:-http://$host:$port}
# A development machine: webhook receivers (docs/example_client.py) run on localhost.
export LASTMILE_WEBHOOK_PRIVATE_TARGETS=${LASTMILE_WEBHOOK_PRIVATE_TARGETS:-true}

say() { echo "run.sh: $*" >&2; }

names=() pids=() logs=()

stop_all() {
  ((${#pids[@]})) || return 0
  kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 100); do  # 10 s to shut down cleanly, then they are killed
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  pids=()
}
trap 'stop_all; rm -f "$var/demo-credentials.json.tmp"' EXIT
trap 'say "interrupted; stopping"; exit 130' INT
trap 'say "terminated; stopping"; exit 143' TERM

fail() {  # MESSAGE [LOG]: report, show the end of the log, stop everything, exit 1
  say "$1"
  if [[ -n ${2:-} && -s $2 ]]; then
    say "last lines of $2:"
    tail -n 25 "$2" | sed 's/^/    /' >&2
  fi
  exit 1
}

start() {  # NAME LOG COMMAND...: run COMMAND in the background, its output in LOG
  local name=$1 log=$2
  shift 2
  "$@" > "$log" 2>&1 &
  names+=("$name") pids+=($!) logs+=("$log")
}

check_running() {  # fail if any process started so far has exited
  local i status
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      status=0
      wait "${pids[$i]}" || status=$?
      fail "the ${names[$i]} exited with status $status $1" "${logs[$i]}"
    fi
  done
}

healthy() {
  # Our API has bound its port (so another server on it cannot pass for it) and
  # answers /healthz, which also reaches the database.
  grep -q "Uvicorn running on" "$var/api.log" 2>/dev/null &&
    "$bin/python" -c "import urllib.request; urllib.request.urlopen('http://$host:$port/healthz', timeout=2)" 2>/dev/null
}

[[ -x $bin/lastmile ]] || fail "$bin/lastmile is missing: run 'make install' first"
mkdir -p "$var"

# Seeding migrates the database first; the credentials file appears whole or not at all.
"$bin/lastmile" seed --demo --json > "$var/demo-credentials.json.tmp" ||
  fail "'lastmile seed --demo' failed (see above)"
mv "$var/demo-credentials.json.tmp" "$var/demo-credentials.json"

# The API first, with the machine to itself (start-up is mostly imports, CPU-bound);
# the worker and the scheduler once it answers.
start API "$var/api.log" "$bin/lastmile" serve --host "$host" --port "$port"
deadline=$((SECONDS + start_timeout))
until healthy; do
  check_running "while starting"
  ((SECONDS < deadline)) ||
    fail "the API did not answer http://$host:$port/healthz within $start_timeout s" "$var/api.log"
  sleep 0.2
done
start worker "$var/worker.log" "$bin/lastmile" worker --concurrency 1
start scheduler "$var/scheduler.log" "$bin/lastmile" scheduler
check_running "while starting"

cat <<MSG

Lastmile is running (logs in $var/*.log; Ctrl-C stops everything).
  API health      http://$host:$port/healthz
  GraphQL         http://$host:$port/graphql   (GraphiQL in a browser: put {"Authorization": "Bearer <token>"} in its Headers pane)
  GraphQL schema  http://$host:$port/graphql/schema.graphql
  OAuth token     POST http://$host:$port/oauth/token  (client_credentials, HTTP Basic)
  Credentials     $var/demo-credentials.json:
MSG
"$bin/python" - "$var/demo-credentials.json" <<'PY'
import json
import sys

seed = json.load(open(sys.argv[1]))
for m in seed["merchants"]:
    print(f"    merchant {m['name']}: {m['client_id']} / {m['client_secret']}")
print(f"    operator: {seed['operator']['client_id']} / {seed['operator']['client_secret']}")
PY

while true; do
  check_running "(the others are being stopped)"
  sleep 1
done
