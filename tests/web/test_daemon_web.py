"""The console served by the real daemon (`gateway-agent run` with a [web] section): the API is
the CLI's --json, a request without the token gets 401, and a report asked through the console
and through the control socket is the same object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hil.ports import free_port
from tests.agentproc import REPO, Agent

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
TOKEN = "t0ken-for-the-console-test-0123456789abcdef"


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback test server)
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None


def test_daemon_serves_the_console_api(tmp_path: Path) -> None:
    token_file = tmp_path / "web.token"
    token_file.write_text(TOKEN)
    os.chmod(token_file, 0o600)
    port = free_port()
    dev = {"dev_eui": "70b3d57ed0000301", "name": "room 1", "class": "co2",
           "codec": "elsys/ers-co2", "dev_addr": "260d0001",
           "nwk_s_key": NWK.hex(), "app_s_key": APP.hex()}  # fmt: skip
    agent = Agent(
        tmp_path / "agent", None, [dev],
        extra={"web": {"listen": f"127.0.0.1:{port}", "token_file": str(token_file)}},
    )  # fmt: skip
    agent.start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/api/status")[0] == 401
        assert get(f"{base}/api/status", "wrong-token-" + "x" * 30)[0] == 401
        code, devices = get(f"{base}/api/devices", TOKEN)
        assert code == 200 and [d["dev_eui"] for d in devices] == [dev["dev_eui"]]
        cli = subprocess.run(
            [sys.executable, "-m", "gateway_agent", "-c", str(agent.config_path),
             "devices", "list", "--json"],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == devices  # the API is the CLI's --json
        code, status = get(f"{base}/api/status", TOKEN)
        assert code == 200 and status["daemon"]["running"] is True
        code, rep = get(f"{base}/api/reports/co2?month=2026-01", TOKEN)
        assert code == 200 and rep["kind"] == "co2"
        assert rep == agent.ask("report", kind="co2", month="2026-01")
        for body in (json.dumps(devices), json.dumps(status), json.dumps(rep)):
            assert NWK.hex() not in body and APP.hex() not in body and TOKEN not in body
    finally:
        assert agent.stop() == 0
