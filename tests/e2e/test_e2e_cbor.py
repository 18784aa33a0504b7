"""CBOR end to end: the real daemon stores each reading as a CBOR item at ingest (so the drain
only splices batches), the batches upstream decode to the JSON messages, and a backlog stored
as CBOR still goes out right after the format is switched to JSON."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.upstream.wire import json_form
from hil.broker import Mosquitto
from tests.agentproc import Agent, Forwarder, write_toml
from tests.durability_kit import Collector, persistent_broker
from tests.e2e.test_e2e import DEVS, device_table, expected_id, uplink

CBOR = {"upstream": {"format": "cbor", "batch_max": 8}}


def _agent(tmp: Path, port: int, **extra: Any) -> Agent:
    return Agent(tmp, port, [device_table(d) for d in DEVS], extra={**CBOR, **extra})


def _push(agent: Agent, fcnts: range) -> None:
    fw = Forwarder(agent.udp_port)
    for fcnt in fcnts:
        for i, d in enumerate(DEVS):
            assert fw.push(uplink(d, fcnt, temp=20.0 + fcnt + i)) is not None
    fw.close()


def _buffered(tmp: Path, port: int, fcnts: range) -> Agent:
    """An agent that has stored `fcnts` uplinks of every device while the broker is down."""
    agent = _agent(tmp, port)
    agent.start()
    try:
        _push(agent, fcnts)
        _wait(lambda: agent.ask("outbox")["depth"] >= len(fcnts) * len(DEVS))
    except BaseException:
        agent.kill()
        raise
    return agent


def _wait(cond: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cond()


def _body_types(agent: Agent) -> list[str]:
    with sqlite3.connect(agent.state / "agent.db") as db:
        return [r[0] for r in db.execute("SELECT typeof(body) FROM outbox WHERE kind = 'up'")]


def _check(readings: list[dict[str, Any]], fcnts: range) -> None:
    for d in DEVS:
        mine = [m for m in readings if m["devEui"] == d["eui"]]
        assert [m["fCnt"] for m in mine] == list(fcnts), "per device, FCnt order"
        for m in mine:
            assert m["id"] == expected_id(d, m["fCnt"])
            info = dict(m["deviceInfo"])
            # JSON bodies name the device's class (outputs group by it); CBOR's fixed labels don't
            assert info.pop("class", "co2") == "co2"
            assert info == {
                "devEui": d["eui"],
                "deviceName": f"room {d['eui'][-1]}",
                "tags": ["school-017"],
            }
            i = DEVS.index(d)
            assert m["measurements"]["temperature_c"] == round(20.0 + m["fCnt"] + i, 1)
            assert m["rxInfo"][0]["gatewayId"] == "b827ebfffe6c1a2b"


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[tuple[Mosquitto, Collector]]:
    """A broker with persistence and a subscriber with a persistent session, subscribed before
    the broker stops: whatever the agent publishes after the restart reaches it."""
    broker = persistent_broker(tmp_path)
    sub = Collector(broker.port, name="cbor")
    broker.stop()
    yield broker, sub
    sub.close()
    broker.stop()


def test_cbor_batches_from_items_made_at_ingest(
    tmp_path: Path, outage: tuple[Mosquitto, Collector]
) -> None:
    broker, sub = outage
    agent = _buffered(tmp_path / "a", broker.port, range(12))
    try:
        assert set(_body_types(agent)) == {"blob"}, "a CBOR item per reading, made at ingest"
        broker.start()
        _wait(lambda: agent.ask("outbox")["depth"] == 0, 20)
        _wait(lambda: sum(len(b) for b in sub.bodies("batch/up")) >= 24)
        batches = [json_form(b) for b in sub.bodies("batch/up")]
        assert all(len(b) <= 8 for b in batches)
        readings = [m for b in batches for m in b]
        assert len(readings) == 24 and len({m["id"] for m in readings}) == 24
        _check(readings, range(12))
        assert agent.stop() == 0
    finally:
        agent.kill()


def test_a_cbor_backlog_goes_out_as_json_after_the_switch(
    tmp_path: Path, outage: tuple[Mosquitto, Collector]
) -> None:
    broker, sub = outage
    agent = _buffered(tmp_path / "b", broker.port, range(6))
    try:
        assert agent.stop() == 0
        cfg = dict(agent.cfg)
        cfg["upstream"] = {**cfg["upstream"], "format": "json", "batch_max": 1}
        write_toml(agent.config_path, cfg)
        agent.start()
        _push(agent, range(6, 9))  # new readings: stored as JSON text
        _wait(lambda: agent.ask("outbox")["depth"] >= 18)
        assert sorted(set(_body_types(agent))) == ["blob", "text"]
        broker.start()
        _wait(lambda: len(sub.bodies("/up")) >= 18, 20)
        assert not sub.bodies("batch/up")
        msgs = sub.bodies("/up")
        assert len(msgs) == 18, "every reading once, whichever form it was stored in"
        _check(msgs, range(9))
        assert agent.proc is not None
        os.kill(agent.proc.pid, signal.SIGTERM)
        assert agent.proc.wait(10) == 0
    finally:
        agent.kill()
