#!/usr/bin/env bash
# The README's test command: venv + package + mosquitto, then the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --need-mosquitto
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
