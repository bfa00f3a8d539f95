#!/usr/bin/env bash
# Start the local Kafka, ClickHouse, Pulsar and SMTP servers the docs' examples use (all on
# 127.0.0.1, free ports; the sink properties for each are printed). Ctrl-C stops them.
# Needs the test extras (.venv from scripts/bootstrap.sh) and Debian's clickhouse-server.
# Usage: scripts/dev-servers.sh [kafka] [clickhouse] [pulsar] [smtp]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" exec .venv/bin/python -m scripts.dev_servers "$@"
