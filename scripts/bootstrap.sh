#!/usr/bin/env bash
# Make the Python environment (.venv) with sinkflow installed; with "test", also the test
# extras and the Debian packages the test servers need. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests="${1:-}"

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.sinkflow-installed${want_tests:+-$want_tests}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing Python packages"
  .venv/bin/pip install --quiet --upgrade pip
  if [ "$want_tests" = "test" ]; then
    .venv/bin/pip install --quiet -e ".[test]"
  else
    .venv/bin/pip install --quiet -e .
  fi
  touch "$stamp"
fi

if [ "$want_tests" = "test" ]; then
  # Real servers for the tests: ClickHouse, a TLS terminator for Kafka, a browser for the console.
  missing=()
  command -v clickhouse-server >/dev/null || missing+=(clickhouse-server clickhouse-client)
  command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || missing+=(stunnel4)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v openssl >/dev/null || missing+=(openssl)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
  fi
fi
