#!/usr/bin/env bash
# The README's demo: the real agent + simulated radios for about a minute, readings shown as they
# arrive upstream (a private mosquitto on a free loopback port; buffer-only without mosquitto).
set -euo pipefail
cd "$(dirname "$0")/.."
# git checks files out world-readable and the agent refuses a file of keys that others can read:
# the examples' devices file becomes 0600 here, so `gateway-agent config check examples/agent.toml`
# passes in a clone. --prepare-examples: only that, no demo.
chmod 600 examples/devices.toml
if [[ "${1:-}" == "--prepare-examples" ]]; then
    exit 0
fi
bash scripts/bootstrap.sh --want-mosquitto
exec .venv/bin/python -m hil run hil/scenarios/demo.toml --live "$@"
