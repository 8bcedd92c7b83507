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
echo "==> Loading the demo carrier (USDOT number and insurance policy)"
.venv/bin/superior-one carriers seed-demo

PORT=${PORT:-8000}
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

# Payments: unless a real Stripe key is set, the local payment provider simulator
# replaces Stripe at SO_STRIPE_API_BASE and sends signed webhooks to the api.
# Connected accounts it creates can receive transfers at once (no onboarding form).
if [ -z "${SO_STRIPE_SECRET_KEY:-}" ] || [ "$SO_STRIPE_SECRET_KEY" = sk_test_simulator ]; then
  PAY_SIM_PORT=${PAY_SIM_PORT:-12111}
  export SO_STRIPE_SECRET_KEY=sk_test_simulator
  export SO_STRIPE_API_BASE="http://127.0.0.1:$PAY_SIM_PORT"
  export SO_STRIPE_WEBHOOK_SECRET=${SO_STRIPE_WEBHOOK_SECRET:-whsec_simulator}
  sim_secrets=()
  IFS=, read -ra secret_list <<<"$SO_STRIPE_WEBHOOK_SECRET"
  for secret in "${secret_list[@]}"; do sim_secrets+=(--webhook-secret "$secret"); done
  .venv/bin/python -m superior_one.simulators.payment_provider --port "$PAY_SIM_PORT" \
    --api-key "$SO_STRIPE_SECRET_KEY" --webhook-url "http://127.0.0.1:$PORT/webhooks/stripe" \
    "${sim_secrets[@]}" --accounts-active &
  pids+=($!)
fi

# The api's processes add up their metrics through this directory, emptied at each
# start; only the api gets it (docs/operations.md, "Metrics across processes").
API_METRICS_DIR=${API_METRICS_DIR:-${TMPDIR:-/tmp}/superior-one-metrics-api}
rm -rf "$API_METRICS_DIR" && mkdir -p "$API_METRICS_DIR"
PROMETHEUS_MULTIPROC_DIR="$API_METRICS_DIR" \
  .venv/bin/superior-one serve --host 127.0.0.1 --port "$PORT" --workers "${API_WORKERS:-2}" &
pids+=($!)

# FMCSA: without a real webKey, the local simulator stands in for QCMobile; the
# worker finds it through the same settings it would use for FMCSA itself.
if [ -z "${SO_FMCSA_WEB_KEY:-}" ]; then
  FMCSA_SIM_PORT=${FMCSA_SIM_PORT:-8081}
  export SO_FMCSA_WEB_KEY=dev-key
  export SO_FMCSA_BASE_URL="http://127.0.0.1:$FMCSA_SIM_PORT/qc/services"
  .venv/bin/python -m superior_one.simulators.fmcsa --port "$FMCSA_SIM_PORT" \
    --web-key "$SO_FMCSA_WEB_KEY" &
  pids+=($!)
fi
# Background jobs and the periodic schedule (insurance expiry, FMCSA re-verification,
# scores, load expiry, partitions); more workers may run anywhere on the same database.
.venv/bin/superior-one worker &
pids+=($!)
# GPS: one consumer moves buffered fixes from the Redis stream into PostgreSQL and
# runs the geofences; start more anywhere (same group) when the stream lag grows.
.venv/bin/superior-one gps-consumer &
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
              GET /carriers/me (the demo carrier, verified by the worker against FMCSA${SO_FMCSA_BASE_URL:+ at $SO_FMCSA_BASE_URL})
  Payments:   .venv/bin/superior-one payments demo --api http://127.0.0.1:$PORT
              (a delivered demo load is completed, invoiced, charged, confirmed by the
              provider's signed webhook and paid out to the carrier; the ledger is audited)
  GPS:        .venv/bin/superior-one simulate-fleet --trucks 1000 --api-url http://127.0.0.1:$PORT
              (drives released loads along freeways; the gps-consumer moves them through
              pickup and delivery by geofence; GET /loads/{id}/track shows a route)
Press Ctrl-C to stop.
TXT
wait
