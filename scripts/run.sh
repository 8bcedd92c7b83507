#!/usr/bin/env bash
# Set up everything on this machine, load demo data and start the platform.
# Stop with Ctrl-C; every process started here stops with it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
set -a
# shellcheck disable=SC1091
. ./.env
set +a

DB_NAME=${SO_DATABASE_URL##*/}
if ! psql -h 127.0.0.1 -U postgres -lqt | cut -d'|' -f1 | grep -qw "$DB_NAME"; then
  echo "==> Creating database $DB_NAME"
  createdb -h 127.0.0.1 -U postgres "$DB_NAME"
fi

echo "==> Migrating"
.venv/bin/superior-one migrate
echo "==> Loading demo data"
.venv/bin/superior-one seed-demo-accounts
echo "==> Loading demo loads (once; SEED_LOADS=${SEED_LOADS:-5000})"
.venv/bin/superior-one seed --loads "${SEED_LOADS:-5000}" --demo-share 1 --if-empty

PORT=${PORT:-8000}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

# The api's processes add up their metrics through this directory, emptied at each
# start; only the api gets it (docs/operations.md, "Metrics across processes").
API_METRICS_DIR=${API_METRICS_DIR:-${TMPDIR:-/tmp}/superior-one-metrics-api}
rm -rf "$API_METRICS_DIR" && mkdir -p "$API_METRICS_DIR"
PROMETHEUS_MULTIPROC_DIR="$API_METRICS_DIR" \
  .venv/bin/superior-one serve --host 127.0.0.1 --port "$PORT" --workers "${API_WORKERS:-2}" &
pids+=($!)

cat <<TXT

Superior One is running.
  API:        http://127.0.0.1:$PORT
  API docs:   http://127.0.0.1:$PORT/docs
  Demo login: dispatch@demo.example / $SO_DEMO_PASSWORD   (carrier dispatcher)
              shipper@demo.example / $SO_DEMO_PASSWORD    (shipper admin)
              admin@superior-one.example / $SO_DEMO_PASSWORD (platform admin)
  Try:        curl -s -X POST http://127.0.0.1:$PORT/auth/login -H 'content-type: application/json' \\
                -d '{"email":"dispatch@demo.example","password":"$SO_DEMO_PASSWORD"}'
              then, with the accessToken: GET /loads?originState=TX&sort=rate
              or GET /loads?originLat=41.88&originLng=-87.63&originRadiusMi=100&sort=distance
Press Ctrl-C to stop.
TXT
wait
