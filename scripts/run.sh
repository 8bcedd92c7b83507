#!/usr/bin/env bash
# Set up everything on this machine, load demo data and start the platform.
# Stop with Ctrl-C; every process started here stops with it.
#
# Settings are read as superior_one.config reads them: a variable already in the
# environment wins over the file named by SO_ENV_FILE, which wins over .env. This
# script also reads PORT (the api's, 8000), API_WORKERS (2), API_METRICS_DIR and
# SEED_LOADS (5000) that way. README.md, "Running a second copy", lists what a
# second copy beside the first must change.
set -euo pipefail
if [ -n "${SO_ENV_FILE:-}" ]; then
  # Relative to the directory the command was typed in, for every process below.
  SO_ENV_FILE=$(realpath -e -- "$SO_ENV_FILE")
  export SO_ENV_FILE
fi
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

# Export each NAME=value line of a dotenv file unless NAME is set already.
load_env_file() {
  local line name
  while IFS= read -r line || [ -n "$line" ]; do
    line=${line#export }
    name=${line%%=*}
    [[ $line == *=* && $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    [ -n "${!name+set}" ] || eval "export $line"
  done <"$1"
}
if [ -n "${SO_ENV_FILE:-}" ]; then load_env_file "$SO_ENV_FILE"; fi
load_env_file .env

for name in PAY_SIM_PORT FMCSA_SIM_PORT; do
  if [ -n "${!name:-}" ]; then
    echo "$name=${!name} is not read: the simulators listen on the ports in" \
      "SO_STRIPE_API_BASE and SO_FMCSA_BASE_URL, so set those instead and unset $name" \
      "(README.md, \"Running a second copy\")" >&2
    exit 1
  fi
done

PORT=${PORT:-8000}
DB_NAME=${SO_DATABASE_URL##*/}
# The port of a simulator's URL, which must be on this machine.
local_port() { [[ $1 =~ ^http://(127\.0\.0\.1|localhost):([0-9]+)(/|$) ]] && echo "${BASH_REMATCH[2]}"; }

# Payments: unless a real Stripe key is set, the local payment provider simulator
# replaces Stripe at SO_STRIPE_API_BASE and sends signed webhooks to the api.
pay_sim_port=
if [ -z "${SO_STRIPE_SECRET_KEY:-}" ] || [ "$SO_STRIPE_SECRET_KEY" = sk_test_simulator ]; then
  export SO_STRIPE_SECRET_KEY=sk_test_simulator
  export SO_STRIPE_WEBHOOK_SECRET=${SO_STRIPE_WEBHOOK_SECRET:-whsec_simulator}
  if ! pay_sim_port=$(local_port "${SO_STRIPE_API_BASE:-}"); then
    echo "Invalid SO_STRIPE_API_BASE=${SO_STRIPE_API_BASE:-}: the payment simulator needs" \
      "http://127.0.0.1:<port>. Set it in .env as .env.example does, or set a real" \
      "SO_STRIPE_SECRET_KEY." >&2
    exit 1
  fi
fi
# FMCSA: without a real webKey, the local simulator replaces QCMobile at
# SO_FMCSA_BASE_URL with the key dev-key, as in .env.example. A worker started by
# hand reads the same two settings from the same files.
fmcsa_sim_port=
if [ -z "${SO_FMCSA_WEB_KEY:-}" ] || [ "$SO_FMCSA_WEB_KEY" = dev-key ]; then
  # A .env made from an older .env.example names the real FMCSA and no key.
  if ! fmcsa_sim_port=$(local_port "${SO_FMCSA_BASE_URL:-}") || [ -z "${SO_FMCSA_WEB_KEY:-}" ]; then
    fmcsa_sim_port=${fmcsa_sim_port:-8081}
    export SO_FMCSA_BASE_URL="http://127.0.0.1:$fmcsa_sim_port/qc/services"
    echo "warning: this run's processes use the FMCSA simulator at $SO_FMCSA_BASE_URL with" \
      "webKey dev-key, but a worker started by hand reads another address or no webKey and" \
      "cannot verify carriers: set SO_FMCSA_BASE_URL and SO_FMCSA_WEB_KEY in .env as" \
      ".env.example does." >&2
  fi
  export SO_FMCSA_WEB_KEY=dev-key
fi

# Every port this run listens on must be free: a second server on a busy port
# would fail, or quietly leave this run's traffic to the first copy.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
busy=()
check_port() {
  if [ -n "$2" ] && [ "$2" != 0 ] && port_busy "$2"; then busy+=("$2 ($1)"); fi
}
check_port PORT "$PORT"
check_port SO_STRIPE_API_BASE "$pay_sim_port"
check_port SO_FMCSA_BASE_URL "$fmcsa_sim_port"
case ${SO_METRICS_ENABLED:-true} in
  [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | [Oo][Ff][Ff]) ;;
  *)
    check_port SO_METRICS_PORT_WORKER "${SO_METRICS_PORT_WORKER:-9101}"
    check_port SO_METRICS_PORT_GPS_CONSUMER "${SO_METRICS_PORT_GPS_CONSUMER:-9102}"
    ;;
esac
if [ ${#busy[@]} -gt 0 ]; then
  echo "These ports are in use, perhaps by another copy of Superior One:" >&2
  printf '  %s\n' "${busy[@]}" >&2
  echo "Stop it, or change the settings named (README.md, \"Running a second copy\")." >&2
  exit 1
fi

pids=()
metrics_dir_made=
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  if [ -n "$metrics_dir_made" ]; then rm -rf "$API_METRICS_DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The api's processes add up their metrics through this directory, which must be
# empty at start and is given to the api only (docs/operations.md, "Metrics across
# processes"). By default each run makes its own and removes it at the end. A
# directory named in API_METRICS_DIR is emptied first, unless a live process still
# writes there: prometheus-client names each process's files <kind>_<pid>.db.
if [ -n "${API_METRICS_DIR:-}" ]; then
  for file in "$API_METRICS_DIR"/*.db; do
    pid=${file##*_}
    pid=${pid%.db}
    if [[ $pid =~ ^[0-9]+$ ]] && ps -p "$pid" >/dev/null; then
      echo "API_METRICS_DIR=$API_METRICS_DIR is in use by process $pid; choose another" \
        "directory, or leave API_METRICS_DIR unset" >&2
      exit 1
    fi
  done
  rm -rf "$API_METRICS_DIR" && mkdir -p "$API_METRICS_DIR"
else
  API_METRICS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/superior-one-metrics-api-$PORT.XXXXXX")
  metrics_dir_made=1
fi

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
logins=$(.venv/bin/python -m superior_one.demo | sed 's/^/              /')

if [ -n "$pay_sim_port" ]; then
  # Connected accounts it creates can receive transfers at once (no onboarding form).
  sim_secrets=()
  IFS=, read -ra secret_list <<<"$SO_STRIPE_WEBHOOK_SECRET"
  for secret in "${secret_list[@]}"; do sim_secrets+=(--webhook-secret "$secret"); done
  .venv/bin/python -m superior_one.simulators.payment_provider --port "$pay_sim_port" \
    --api-key "$SO_STRIPE_SECRET_KEY" --webhook-url "http://127.0.0.1:$PORT/webhooks/stripe" \
    "${sim_secrets[@]}" --accounts-active &
  pids+=($!)
fi

PROMETHEUS_MULTIPROC_DIR="$API_METRICS_DIR" \
  .venv/bin/superior-one serve --host 127.0.0.1 --port "$PORT" --workers "${API_WORKERS:-2}" &
pids+=($!)

if [ -n "$fmcsa_sim_port" ]; then
  .venv/bin/python -m superior_one.simulators.fmcsa --port "$fmcsa_sim_port" \
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

# Commands typed in another shell need the same SO_ENV_FILE to reach this copy.
cli=".venv/bin/superior-one"
if [ -n "${SO_ENV_FILE:-}" ]; then cli="SO_ENV_FILE=$SO_ENV_FILE $cli"; fi
cat <<TXT

Superior One is running.
  API:        http://127.0.0.1:$PORT
  API docs:   http://127.0.0.1:$PORT/docs
  Data:       database $DB_NAME, Redis namespace ${SO_REDIS_NAMESPACE:-so}
  Demo logins, password ${SO_DEMO_PASSWORD:-demo-password-2026}:
$logins
  Try:        curl -s -X POST http://127.0.0.1:$PORT/auth/login -H 'content-type: application/json' \\
                -d '{"email":"dispatch@demo.example","password":"${SO_DEMO_PASSWORD:-demo-password-2026}"}'
              then, with the accessToken: GET /loads?originState=TX&sort=rate
              or GET /loads?originLat=41.88&originLng=-87.63&originRadiusMi=100&sort=distance
              GET /carriers/me (the demo carrier, verified by the worker against FMCSA${SO_FMCSA_BASE_URL:+ at $SO_FMCSA_BASE_URL})
  Payments:   $cli payments demo --api http://127.0.0.1:$PORT
              (a delivered demo load is completed, invoiced, charged, confirmed by the
              provider's signed webhook and paid out to the carrier; the ledger is audited)
  GPS:        $cli simulate-fleet --trucks 1000 --api-url http://127.0.0.1:$PORT
              (posts, books and releases loads through the api, drives them along freeways;
              the gps-consumer moves them through pickup and delivery by geofence, and the
              shipper confirms and pays them; GET /loads/{id}/track shows a route)
Press Ctrl-C to stop.
TXT
wait
