#!/usr/bin/env bash
# Start sinkflow on its embedded default: server, console and demo data on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/sinkflow server "$@"
