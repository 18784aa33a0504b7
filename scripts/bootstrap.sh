#!/usr/bin/env bash
# Shared set-up for the README's two commands: a venv with the package, and mosquitto.
# Usage: scripts/bootstrap.sh [--need-mosquitto|--want-mosquitto]
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "gateway-agent needs Python >= 3.11 (found: $("$PY" --version 2>&1))." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  if ! "$PY" -m venv .venv; then
    echo "python venv module missing: apt-get install python3-venv" >&2
    exit 1
  fi
fi

# Reinstall only when the package definition changed.
stamp=".venv/.gateway-agent-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== installing gateway-agent and its test/dev dependencies into .venv"
  if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[dev]'; } \
      > .venv/install.log 2>&1; then
    tail -n 30 .venv/install.log >&2
    echo "pip install failed (full log: .venv/install.log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

have_mosquitto() { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing $* with apt-get"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    return 0
  fi
  return 1
}

mode="${1:-}"
if [ "$mode" = "--need-mosquitto" ] || [ "$mode" = "--want-mosquitto" ]; then
  if ! have_mosquitto; then
    if ! apt_install mosquitto; then
      if [ "$mode" = "--need-mosquitto" ]; then
        echo "The tests need the mosquitto broker. Install it first: sudo apt-get install mosquitto" >&2
        exit 1
      fi
      echo "mosquitto is not installed (sudo apt-get install mosquitto); the demo runs buffer-only." >&2
    fi
  fi
  # The Debian package may start a system-wide broker; ours are private, so it is left alone.
fi

if [ "$mode" = "--need-mosquitto" ]; then
  # systemd-analyze verifies the unit file in the tests (issue: hardened service).
  if ! command -v systemd-analyze >/dev/null 2>&1; then
    apt_install systemd >/dev/null 2>&1 || echo "note: systemd-analyze not available; unit checks will fail" >&2
  fi
  # The InfluxDB output's tests write into a private influxd (Debian's influxdb, 1.x).
  if ! command -v influxd >/dev/null 2>&1 && [ ! -x /usr/bin/influxd ]; then
    if ! apt_install influxdb; then
      echo "The InfluxDB output tests need influxd: sudo apt-get install influxdb" >&2
      exit 1
    fi
  fi
  # The web console's end-to-end tests drive Debian's headless chromium with selenium.
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if ! apt_install chromium chromium-driver; then
      echo "The web console tests need chromium: sudo apt-get install chromium chromium-driver" >&2
      exit 1
    fi
  fi
fi
