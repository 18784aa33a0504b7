"""Fan-out under faults (issue #20 must-show 2), the real daemon: [upstream] to a real mosquitto,
an influxdb output to a private influxd, a webhook output to a real endpoint. InfluxDB goes
down, then the webhook answers 500 too, the daemon is killed -9 in the middle and restarted,
then both come back: every output ends with every committed reading (at least once, per device
in FCnt order), and while InfluxDB was down the others kept receiving."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import Agent, Forwarder
from tests.durability_kit import Collector, fleet, frame, make_agent, persistent_broker
from tests.outputs.kit import Influxd, WebhookReceiver, agent_cli, find_influxd, secret_file

DB = "agent"
DEVS = fleet(4)


def wait(cond: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def send(agent: Agent, fcnts: range) -> None:
    """One PUSH_DATA per FCnt with a frame of every device; a few ms apart, so a device's
    readings never share a millisecond (InfluxDB's point identity is series + time)."""
    fw = Forwarder(agent.udp_port)
    try:
        for f in fcnts:
            fw.push(*(frame(d, f) for d in DEVS))
            time.sleep(0.004)
    finally:
        fw.close()


def influx_ids(server: Influxd) -> list[str]:
    if not server.running:
        return []
    pts = server.rows('SELECT "id", "fcnt" FROM /.*/', DB)
    return [p["id"] for p in pts if p.get("fcnt") is not None]  # readings (not alerts, events)


def hook_ups(hook: WebhookReceiver) -> list[dict[str, Any]]:
    return [r["msg"] for r in hook.delivered() if r["kind"] == "up"]


def lanes(agent: Agent) -> dict[str, Any]:
    out = agent_cli(agent.config_path, "outbox", "status", "--json")
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout)["outputs"])


def in_fcnt_order(msgs: list[dict[str, Any]]) -> None:
    """Per device, the first arrival of each reading comes in FCnt order (a repeat, at least
    once, may follow later)."""
    for d in DEVS:
        first = list(dict.fromkeys(m["fCnt"] for m in msgs if m["devEui"] == d["eui"]))
        assert first == sorted(first), (d["eui"], first)


def test_fanout_under_faults_every_output_gets_every_reading(tmp_path: Path) -> None:
    if find_influxd() is None:
        pytest.fail("influxd is required: scripts/bootstrap.sh installs Debian's influxdb")
    broker = persistent_broker(tmp_path)
    influx = Influxd(tmp_path / "influxd")
    influx.start()
    influx.create_db(DB)
    hook = WebhookReceiver(secret=b"hook-secret").start()
    secret = secret_file(tmp_path / "hook.secret", "hook-secret")
    fast = {"backoff_initial_s": 0.1, "backoff_max_s": 0.5, "timeout_s": 2}
    outputs = [
        {"name": "influx", "type": "influxdb", "url": influx.url, "database": DB,
         "batch_max": 50, **fast},
        {"name": "hook", "type": "webhook", "url": hook.url, "secret_file": str(secret), **fast},
    ]  # fmt: skip
    agent = make_agent(
        tmp_path / "a", broker.port, DEVS, outputs=outputs, upstream={"inflight": 16}
    )
    mqtt = Collector(broker.port)
    try:
        agent.start()
        send(agent, range(0, 10))
        assert wait(lambda: len(influx_ids(influx)) == 40 and len(hook_ups(hook)) == 40)

        # InfluxDB down: MQTT and the webhook keep receiving, its lane grows, state down
        influx.stop()
        send(agent, range(10, 20))
        assert wait(lambda: {m["fCnt"] for m in hook_ups(hook)} >= set(range(20)))
        assert wait(lambda: {m["fCnt"] for m in mqtt.bodies("/up")} >= set(range(20)))
        st = lanes(agent)
        assert st["influx"]["depth"] == 40 and st["influx"]["state"] == "down", st["influx"]
        assert "cannot connect" in st["influx"]["last_error"]
        assert st["hook"]["depth"] == 0 and st["hook"]["state"] == "up"

        # the webhook fails too (500): MQTT alone keeps receiving; both lanes hold rows
        hook.status = 500
        send(agent, range(20, 30))
        assert wait(lambda: {m["fCnt"] for m in mqtt.bodies("/up")} >= set(range(30)))
        assert wait(lambda: lanes(agent)["hook"]["state"] == "down")
        st = lanes(agent)
        assert st["influx"]["depth"] == 80 and st["hook"]["depth"] == 40, st

        # kill -9 mid-stream, with both lanes full and frames still arriving; restart
        send(agent, range(30, 35))
        agent.kill()
        agent.start()
        committed = agent.accepted_ids()
        assert committed is not None and len(committed) >= 120
        send(agent, range(35, 45))

        # both back: everything committed reaches every output
        influx.start()
        hook.status = 200
        committed = agent.accepted_ids()
        assert committed is not None

        def all_there() -> bool:
            return (
                set(influx_ids(influx)) == committed
                and {m["id"] for m in hook_ups(hook)} == committed
                and {m["id"] for m in mqtt.bodies("/up")} == committed
            )

        assert wait(all_there, 60), {
            "committed": len(committed),
            "influx": len(set(influx_ids(influx))),
            "hook": len({m["id"] for m in hook_ups(hook)}),
            "mqtt": len({m["id"] for m in mqtt.bodies("/up")}),
        }
        assert wait(lambda: all(lane["depth"] == 0 for lane in lanes(agent).values()))
        ups = mqtt.bodies("/up")
        hooked = hook_ups(hook)
        dups = {
            "mqtt": sum(n - 1 for n in Counter(m["id"] for m in ups).values()),
            "hook": sum(n - 1 for n in Counter(m["id"] for m in hooked).values()),
            # InfluxDB overwrites a repeated point (same series and time): never two
            "influx": len(influx_ids(influx)) - len(committed),
        }
        print(f"committed {len(committed)}, duplicates (at least once) {dups}")
        assert dups["influx"] == 0 and dups["hook"] <= 16 and dups["mqtt"] <= 32, dups
        # the device class (in the up message's deviceInfo) names the InfluxDB measurement
        names = {r["name"] for r in influx.rows("SHOW MEASUREMENTS", DB)}
        assert "legionella" in names and "readings" not in names, names
        in_fcnt_order(ups)
        in_fcnt_order(hooked)
        assert all(r["signed_ok"] for r in hook.delivered())
        assert agent.stop() == 0
    finally:
        agent.kill()
        mqtt.close()
        hook.close()
        influx.stop()
        broker.stop()
