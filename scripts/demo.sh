#!/usr/bin/env bash
# The README's demo: the real agent + simulated radios for about a minute, readings shown as they
# arrive upstream (a private mosquitto on a free loopback port; buffer-only without mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --want-mosquitto
exec .venv/bin/python -m hil run hil/scenarios/demo.toml --live "$@"
