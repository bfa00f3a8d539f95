#!/usr/bin/env bash
# Run the whole test suite against real servers (installed here if missing; started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
exec .venv/bin/python -m pytest "$@"
