"""`gateway-agent devices downlink EUI --object '{...}'`: the device's codec `encodeDownlink` makes
fPort and bytes, queued like a hex downlink; the codec's errors shown; offline (the database) and
online (the control command `downlink` with `object`)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_agent.control import request
from gateway_agent.errors import ControlError
from tests.agentproc import REPO, Agent

CODEC = REPO / "tests/fixtures/imports/ttnrepo/vendor/fife-sensors/room-co2.js"
ROOM = {"dev_eui": "70b3d57ed0000301", "name": "room", "class": "co2", "codec": f"js:{CODEC}",
        "dev_addr": "260c0301", "nwk_s_key": "00" * 16, "app_s_key": "11" * 16}  # fmt: skip
LPP = {**ROOM, "dev_eui": "70b3d57ed0000302", "dev_addr": "260c0302", "codec": "cayenne-lpp"}
BARE = {**ROOM, "dev_eui": "70b3d57ed0000303", "dev_addr": "260c0303"}
BARE.pop("codec")


def cli(agent: Agent, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(agent.config_path), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def queued(agent: Agent) -> list[tuple[str, int, str]]:
    db = sqlite3.connect(agent.state / "agent.db")
    try:
        rows = db.execute("SELECT dev_eui, f_port, payload FROM downlinks ORDER BY seq").fetchall()
    finally:
        db.close()
    return [(e, p, bytes(b).hex()) for e, p, b in rows]


def test_object_downlink_offline(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "a", None, [ROOM, LPP, BARE])
    agent.start()
    assert agent.stop() == 0
    eui = ROOM["dev_eui"]
    r = cli(agent, "devices", "downlink", eui, "--object", '{"interval": 600}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"queued downlink 1 for {eui}: fPort 10, 010258"
    r = cli(agent, "devices", "downlink", eui, "--object", '{"led": true, "reboot": true}')
    assert r.returncode == 0 and r.stdout.strip().endswith("fPort 10, 020103"), r.stderr
    assert queued(agent) == [(eui, 10, "010258"), (eui, 10, "020103")]
    for args, code, text in (
        (["--object", '{"interval": 5}'], 1,
         f"{eui}: js:{CODEC} encodeDownlink: interval must be a whole number of seconds, 60..65535"),
        (["--object", "{}"], 1, "nothing to send: give interval, led or reboot"),
        (["--object", '{"interval": '], 2, "--object"),
        (["--object", "[600]"], 2, "expected a JSON object, got list"),
        (["--object", '{"interval": 600}', "0102"], 2, "give either HEX or --object"),
        ([], 2, "give either HEX or --object"),
        (["--object", '{"interval": 600}', "--fport", "300"], 2, "--fport"),
    ):  # fmt: skip
        r = cli(agent, "devices", "downlink", eui, *args)
        assert r.returncode == code and text in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""
    r = cli(agent, "devices", "downlink", LPP["dev_eui"], "--object", '{"interval": 600}')
    assert r.returncode == 1 and "a built-in codec has no downlink encoder" in r.stderr
    r = cli(agent, "devices", "downlink", BARE["dev_eui"], "--object", '{"interval": 600}')
    assert r.returncode == 1 and "has no codec to encode an object with" in r.stderr
    r = cli(agent, "devices", "downlink", "70b3d57ed00003ff", "--object", '{"interval": 600}')
    assert r.returncode == 1 and "unknown device 70b3d57ed00003ff" in r.stderr
    assert len(queued(agent)) == 2, "a refused object queued something"


def test_object_downlink_online(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "a", None, [ROOM, LPP])
    agent.start()
    try:
        eui = ROOM["dev_eui"]
        r = cli(agent, "devices", "downlink", eui, "--object", '{"interval": 900}', "--confirmed")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"queued downlink 1 for {eui}: fPort 10, 010384"
        ans = agent.ask("downlink", dev_eui=eui, object={"led": False})
        assert ans == {"queued": 2, "f_port": 10, "payload": "0200"}
        # hex as before
        ans = agent.ask("downlink", dev_eui=eui, f_port=3, payload="abcd")
        assert ans == {"queued": 3, "f_port": 3, "payload": "abcd"}
        for obj, text in (
            ({"interval": 1.5}, "interval must be a whole number of seconds"),
            ([1, 2], "object: expected a JSON object, got list"),
        ):
            with pytest.raises(ControlError, match=text):
                request(agent.control, "downlink", dev_eui=eui, object=obj)
        with pytest.raises(ControlError, match="no downlink encoder"):
            request(agent.control, "downlink", dev_eui=LPP["dev_eui"], object={"interval": 600})
        r = cli(agent, "devices", "downlink", eui, "--object", '{"interval": 5}')
        assert r.returncode == 1 and "interval must be a whole number" in r.stderr
        assert agent.ask("ping")["pong"] is True  # the daemon lives on
    finally:
        assert agent.stop() == 0
    assert queued(agent) == [(eui, 10, "010384"), (eui, 10, "0200"), (eui, 3, "abcd")]
    assert ROOM["app_s_key"] not in agent.log()
