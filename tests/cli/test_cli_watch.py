"""`outbox watch`: a backlog drain watched with a progress bar, exit 0 once empty."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from hil.broker import Mosquitto
from hil.lorawan_crypto import build_data_frame
from tests.agentproc import Agent, Forwarder

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")


def test_outbox_watch_follows_a_drain(tmp_path: Path, broker: Mosquitto) -> None:
    dev = {
        "dev_eui": "70b3d57ed0000001",
        "class": "co2",
        "codec": "cayenne-lpp",
        "dev_addr": "260b3c5a",
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
    }
    broker.stop()
    agent = Agent(tmp_path / "a", broker.port, [dev])
    agent.start()
    try:
        fw = Forwarder(agent.udp_port)
        for f in range(30):
            fw.push(
                build_data_frame(
                    2, bytes.fromhex("260b3c5a"), f, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1"
                )
            )
        deadline = time.monotonic() + 10
        while agent.ask("outbox")["depth"] < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        cli = [
            sys.executable,
            "-m",
            "gateway_agent",
            "-c",
            str(agent.config_path),
            "outbox",
            "watch",
        ]
        r = subprocess.run(
            [*cli, "--timeout", "2", "--interval", "0.2"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 1 and "still holds" in r.stderr, "broker down: the watch times out"
        broker.start()
        r = subprocess.run(
            [*cli, "--timeout", "30", "--interval", "0.2"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert "outbox empty" in r.stdout and "draining" in r.stdout
        assert agent.ask("outbox")["depth"] == 0
    finally:
        agent.stop()


def test_status_and_watch_count_every_output(tmp_path: Path, broker: Mosquitto) -> None:
    """With [[outputs]], `outbox status` has a line per output (waiting, state, why) and `outbox
    watch` waits for every lane, not only the outbox."""
    from hil.ports import free_port

    dev = {
        "dev_eui": "70b3d57ed0000001",
        "class": "co2",
        "codec": "cayenne-lpp",
        "dev_addr": "260b3c5a",
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
    }
    closed = free_port()  # nothing listens: the webhook's destination is down
    hook = {"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{closed}/x"}
    agent = Agent(tmp_path / "a", broker.port, [dev], extra={"outputs": [hook]})
    agent.start()
    try:
        fw = Forwarder(agent.udp_port)
        for f in range(5):
            fw.push(
                build_data_frame(
                    2, bytes.fromhex("260b3c5a"), f, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1"
                )
            )
        deadline = time.monotonic() + 10
        while agent.ask("outbox")["outputs"].get("hook", {}).get("depth", 0) < 5:
            assert time.monotonic() < deadline, agent.ask("outbox")
            time.sleep(0.05)
        r = agent.cli("outbox", "status")
        assert r.returncode == 0, r.stderr
        line = next(x for x in r.stdout.splitlines() if x.startswith("hook:"))
        assert "5 waiting (up 5)" in line and "down (" in line and "cannot connect" in line, line
        up = next(x for x in r.stdout.splitlines() if x.startswith("upstream:"))
        assert "0 waiting" in up and ", up" in up, up  # [upstream] beside outputs: its lane
        r = agent.cli("outbox", "watch", "--timeout", "2", "--interval", "0.2")
        assert r.returncode == 1, "the webhook's lane still holds 5: not done"
    finally:
        agent.stop()
