#!/usr/bin/env bash
# Run every check CI runs: lint, format, types and the whole test suite.
# Extra arguments go to pytest (for example: scripts/test.sh tests/auth -x).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh

echo "==> ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "==> mypy"
.venv/bin/mypy
echo "==> pytest"
set +e
.venv/bin/pytest -n "${PYTEST_WORKERS:-2}" "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
