#!/usr/bin/env bash
# Prepare this machine for Superior One: system services, the virtualenv and the database.
# Safe to run again: each step checks first and does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_HOST=127.0.0.1
PG_PORT=5432
REDIS_PORT=6379
PYTHON=${PYTHON:-python3.11}
UV_VERSION=0.13.9

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

can_apt() { [ "$(id -u)" = 0 ] && have apt-get; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
manual() {
  echo "Cannot install $1 automatically on this machine (needs root and apt-get)." >&2
  echo "Install it yourself, then run this command again: $2" >&2
  exit 1
}

# PostgreSQL 15 with PostGIS 3: use the running server when it answers.
if ! port_open "$PG_HOST" "$PG_PORT"; then
  say "PostgreSQL is not answering on $PG_HOST:$PG_PORT; installing and starting it"
  can_apt || manual "PostgreSQL 15" "apt-get install postgresql-15 postgresql-15-postgis-3"
  apt_install postgresql-15
  pg_ctlcluster --skip-systemctl-redirect 15 main start || pg_ctlcluster 15 main start
fi
if ! ls /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then
  say "Installing PostGIS"
  can_apt || manual "PostGIS 3" "apt-get install postgresql-15-postgis-3"
  apt_install postgresql-15-postgis-3
fi

# Redis 7
if ! port_open 127.0.0.1 "$REDIS_PORT"; then
  say "Redis is not answering on 127.0.0.1:$REDIS_PORT; installing and starting it"
  can_apt || manual "Redis 7" "apt-get install redis-server"
  have redis-server || apt_install redis-server
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no
fi

# promtool checks the alert rules in the tests; optional elsewhere.
if ! have promtool && can_apt; then
  say "Installing promtool (Debian package prometheus)"
  apt_install prometheus || echo "promtool unavailable; alert-rule checks will be skipped"
fi

# Python environment from the lock file.
if [ ! -x .venv/bin/python ]; then
  say "Creating the virtualenv in .venv"
  have "$PYTHON" || PYTHON=python3
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  # A virtualenv made by uv itself has no pip.
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip >/dev/null
  .venv/bin/python -m pip install -q "uv==$UV_VERSION"
fi
say "Installing Python dependencies from requirements.lock"
.venv/bin/uv pip install -q --python .venv/bin/python -r requirements.lock
.venv/bin/uv pip install -q --python .venv/bin/python --no-deps -e .

if [ ! -f .env ]; then
  cp .env.example .env
fi
