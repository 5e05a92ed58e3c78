#!/usr/bin/env bash
# The test command: set-up, lint, type check, then the whole suite (lab tests included when
# run as root). Extra arguments go to pytest, e.g. scripts/test.sh -k targets.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
. .venv/bin/activate
echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy iotrate probes reports rating_schema
echo "== pytest"
pytest "$@"
