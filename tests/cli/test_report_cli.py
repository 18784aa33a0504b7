"""`gateway-agent report` against the real daemon: the same JSON from a running agent (control
socket) and a stopped one (its database, read-only); HTML and CSV files; usage errors."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hil.lorawan_crypto import build_data_frame
from tests.agentproc import REPO, Agent, Forwarder

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
ROOMS = {"70b3d57ed0000101": "260c0001", "70b3d57ed0000102": "260c0002"}


def room(eui: str, addr: str) -> dict[str, Any]:
    return {"dev_eui": eui, "name": f"room {eui[-1]}", "class": "co2", "codec": "elsys/ers-co2",
            "tags": ["school-017"], "dev_addr": addr, "nwk_s_key": NWK.hex(), "app_s_key": APP.hex()}  # fmt: skip


def cli(agent: Agent, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(agent.config_path), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_report_same_json_running_and_stopped(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "agent", None, [room(e, a) for e, a in ROOMS.items()])
    agent.start()
    try:
        fw = Forwarder(agent.udp_port)
        for fcnt, ppm in enumerate((900, 2400, 2600)):
            for addr in ROOMS.values():
                payload = bytes([0x01, 0x00, 0xE2, 0x06]) + ppm.to_bytes(2, "big")
                phy = build_data_frame(2, bytes.fromhex(addr), fcnt, NWK, APP, f_port=5, payload=payload)  # fmt: skip
                assert fw.push(phy) is not None
        deadline = time.monotonic() + 10
        while len(agent.ask("readings", limit=100)) < 6:
            assert time.monotonic() < deadline, "readings not committed"
            time.sleep(0.05)
        today = dt.date.today().isoformat()
        args = ("report", "co2", "--from", today, "--to", today, "--json")
        online = cli(agent, *args)
        assert online.returncode == 0, online.stderr
        fw.close()
    finally:
        assert agent.stop() == 0
    offline = cli(agent, *args)
    assert offline.returncode == 0, offline.stderr
    a, b = json.loads(online.stdout), json.loads(offline.stdout)
    assert a == b
    assert a["kind"] == "co2" and a["from"] == today and a["to"] == today
    assert sorted(d["dev_eui"] for d in a["devices"]) == sorted(ROOMS)
    assert all(d["verdict"] in ("pass", "fail", "insufficient_data") for d in a["devices"])
    assert all(d["name"].startswith("room ") for d in a["devices"])

    html = tmp_path / "co2.html"
    r = cli(agent, "report", "co2", "--from", today, "--to", today, "-o", str(html))
    assert r.returncode == 0, r.stderr
    page = html.read_text()
    assert page.lstrip().lower().startswith("<!doctype html") and "room 1" in page
    assert "http://" not in page and "https://" not in page  # opens with no network
    r = cli(agent, "report", "co2", "--from", today, "--to", today, "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert {row["dev_eui"] for row in rows} == set(ROOMS)
    # Keys never appear in a report.
    for out in (online.stdout, offline.stdout, page, r.stdout):
        assert NWK.hex() not in out and APP.hex() not in out


def test_report_usage_errors(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "agent", None, [room(e, a) for e, a in ROOMS.items()])
    bad = [
        ("report", "boilers"),
        ("report", "co2", "--month", "2026-13"),
        ("report", "co2", "--month", "2026-01", "--from", "2026-01-01"),
        ("report", "co2", "--from", "yesterday", "--to", "2026-01-02"),
        ("report", "co2", "--device", "zz"),
    ]
    for args in bad:
        r = cli(agent, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr
    r = cli(agent, "report", "co2", "--month", "2026-01")  # never ran: no database yet
    assert r.returncode == 1 and "no database" in r.stderr and "Traceback" not in r.stderr
