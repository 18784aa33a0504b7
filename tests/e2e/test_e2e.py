"""End to end (issue 2): the real daemon process, GWMP over UDP, a real broker and subscriber.

Frames are built by hil's own LoRaWAN encoder (independent of gateway_agent.lorawan).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.lorawan.sessionid import reading_id, session_id
from hil.broker import Mosquitto
from hil.lorawan_crypto import build_data_frame
from tests.agentproc import Agent, Forwarder, Subscriber, write_toml

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
DEVS = [
    {"eui": "70b3d57ed0000001", "addr": "260b3c5a"},
    {"eui": "70b3d57ed0000002", "addr": "260b3c5b"},
]


def device_table(d: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "dev_eui": d["eui"],
        "name": f"room {d['eui'][-1]}",
        "class": "co2",
        "codec": "cayenne-lpp",
        "tags": ["school-017"],
        "dev_addr": d["addr"],
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
        "settings": {
            "field_map": {"temperature_1_c": "temperature_c", "humidity_2_pct": "humidity_pct"}
        },
        **extra,
    }


def lpp(temp_c: float, hum_pct: float) -> bytes:
    t = round(temp_c * 10) & 0xFFFF
    return bytes([1, 0x67, t >> 8, t & 0xFF, 2, 0x68, round(hum_pct * 2)])


def expected_id(d: dict[str, str], fcnt: int) -> str:
    """The reading id every agent gives this device's frame (DESIGN.md invariant 2)."""
    sid = session_id(bytes.fromhex(d["addr"]), NWK, APP)
    return reading_id(bytes.fromhex(d["eui"]), sid, fcnt)


def uplink(
    d: dict[str, str], fcnt: int, temp: float = 21.5, mtype: int = 2, key: bytes = NWK
) -> bytes:
    return build_data_frame(
        mtype, bytes.fromhex(d["addr"]), fcnt, key, APP, f_port=1, payload=lpp(temp, 40.0)
    )


def db_ids(agent: Agent) -> set[str]:
    with sqlite3.connect(agent.state / "agent.db") as db:
        return {r[0] for r in db.execute("SELECT id FROM readings")}


@pytest.fixture
def agent_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    agents: list[Agent] = []

    def make(broker_port: int | None, **kw: Any) -> Agent:
        a = Agent(tmp_path / f"a{len(agents)}", broker_port, [device_table(d) for d in DEVS], **kw)
        a.tmp.mkdir(exist_ok=True)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.kill()
        print(f"--- agent log {a.tmp}:\n{a.log()[-6000:]}")  # shown by pytest on failure


def test_uplinks_are_decoded_and_forwarded(broker: Mosquitto, agent_factory: Any) -> None:
    agent = agent_factory(broker.port)
    agent.start()
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    for fcnt in range(5):
        for i, d in enumerate(DEVS):
            ack = fw.push(uplink(d, fcnt, temp=20.0 + fcnt + i))
            assert ack is not None and ack[3] == 0x01 and ack[1:3] == fw.token.to_bytes(2, "big"), (
                "PUSH_ACK"
            )
    msgs = sub.wait_for(10)
    assert len(msgs) == 10
    by_id = {m["id"]: m for m in msgs}
    for fcnt in range(5):
        for i, d in enumerate(DEVS):
            m = by_id[expected_id(d, fcnt)]
            assert m["devEui"] == d["eui"] and m["devAddr"] == d["addr"] and m["fCnt"] == fcnt
            assert m["fPort"] == 1
            assert m["measurements"]["temperature_c"] == pytest.approx(20.0 + fcnt + i)
            assert m["measurements"]["humidity_pct"] == 40.0
            assert m["rxInfo"][0]["gatewayId"] == "b827ebfffe6c1a2b"
            assert m["rxInfo"][0]["rssi"] == -70
            assert m["txInfo"]["frequency"] == 868100000
    # Per device, FCnt order.
    for d in DEVS:
        assert [m["fCnt"] for m in msgs if m["devEui"] == d["eui"]] == list(range(5))
    status = [t for t, _ in sub.messages if t == "ga/test-gw/status"]
    assert status, "retained status published"
    # Outbox rows leave only after PUBACK: eventually empty.
    deadline = time.monotonic() + 5
    while agent.ask("outbox")["depth"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.ask("outbox")["depth"] == 0
    assert agent.stop() == 0
    sub.close()


def test_bad_input_is_counted_and_never_stored(broker: Mosquitto, agent_factory: Any) -> None:
    agent = agent_factory(broker.port)
    agent.start()
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    d = DEVS[0]
    fw.push(uplink(d, 10))
    assert len(sub.wait_for(1)) == 1
    fw.push(uplink(d, 11, key=bytes(16)))  # wrong NwkSKey -> wrong MIC
    fw.push(
        build_data_frame(2, bytes.fromhex("01020304"), 1, NWK, APP, f_port=1, payload=b"\x01")
    )  # unknown
    fw.push(uplink(d, 10))  # replay of an accepted FCnt (retransmission, not a new reading)
    fw.push(uplink(d, 5))  # older FCnt: replay
    import random

    rng = random.Random(7)
    for i in range(200):  # malformed datagrams of every kind
        kind = i % 4
        if kind == 0:
            fw.raw(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))))
        elif kind == 1:
            fw.raw(b"\x02\x00\x01\x00" + bytes(8) + b"{not json")
        elif kind == 2:
            fw.push(bytes(rng.randrange(256) for _ in range(rng.randrange(12, 60))), wait_ack=False)
        else:
            fw.raw(b"\x02\x00\x01\x00" + bytes(8) + b'{"rxpk":[{"stat":1,"data":"@@@"}]}')
    fw.push(uplink(d, 12, temp=30.0))
    msgs = sub.wait_for(2)
    time.sleep(0.3)
    msgs = sub.json("/up")
    assert [m["fCnt"] for m in msgs] == [10, 12], "only genuine new frames are forwarded"
    assert msgs[1]["measurements"]["temperature_c"] == 30.0
    c = agent.counters()
    assert c.get("bad_input{reason=mic}", 0) == 1
    assert c.get("bad_input{reason=unknown_device}", 0) == 1
    assert c.get("bad_input{reason=replay}", 0) == 1
    # The identical repeat of FCnt 10 is a retransmission: caught by the dedup memory or the FCnt check.
    assert c.get("uplink_retransmissions", 0) + c.get("frames_duplicate", 0) == 1
    malformed = sum(v for k, v in c.items() if k.startswith("bad_input") and "source=" in k)
    assert malformed >= 150
    assert db_ids(agent) == {expected_id(d, 10), expected_id(d, 12)}
    assert agent.proc is not None and agent.proc.poll() is None, "the daemon is still running"
    assert agent.stop() == 0
    sub.close()


def test_broker_down_at_start_buffers_then_delivers(broker: Mosquitto, agent_factory: Any) -> None:
    broker.stop()
    agent = agent_factory(broker.port)
    agent.start()
    fw = Forwarder(agent.udp_port)
    for fcnt in range(20):
        fw.push(uplink(DEVS[0], fcnt))
    deadline = time.monotonic() + 10
    while agent.ask("outbox")["depth"] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.ask("outbox")["depth"] == 20
    # Freeze the agent so the subscriber is in place before the agent can reconnect.
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGSTOP)
    broker.start()
    sub = Subscriber(broker.port, "ga/#")
    agent.proc.send_signal(signal.SIGCONT)
    msgs = sub.wait_for(20, timeout_s=20)
    assert sorted({m["fCnt"] for m in msgs}) == list(range(20))
    assert agent.stop() == 0
    sub.close()


def test_kill9_loses_no_committed_reading(broker: Mosquitto, agent_factory: Any) -> None:
    agent = agent_factory(broker.port)
    agent.start()
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    for fcnt in range(300):
        fw.push(uplink(DEVS[fcnt % 2], fcnt // 2), wait_ack=False)
        time.sleep(0.003)
        if fcnt == 200:
            agent.kill()  # SIGKILL while uplinks stream in
    committed = db_ids(agent)
    assert 0 < len(committed) <= 300
    agent.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = {m["id"] for m in sub.json("/up")}
        if committed <= got:
            break
        time.sleep(0.1)
    got_list = [m["id"] for m in sub.json("/up")]
    assert committed <= set(got_list), "every committed reading is delivered"
    dups = len(got_list) - len(set(got_list))
    assert dups <= 64, f"duplicates only for messages in flight at the kill ({dups})"
    assert agent.stop() == 0
    sub.close()


def test_sigterm_exits_zero_quickly_and_sighup_rejects_broken_config(
    broker: Mosquitto, agent_factory: Any
) -> None:
    agent = agent_factory(broker.port)
    agent.start()
    good = agent.config_path.read_text()
    agent.config_path.write_text(good.replace("[upstream]", "[upstream]\ncolour = 1"))
    assert agent.proc is not None
    os.kill(agent.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "config_reload_failed" not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "config_reload_failed" in agent.log() and "upstream.colour: unknown key" in agent.log()
    assert agent.ask("ping")["pong"] is True, "the old config stays; the daemon keeps running"
    agent.config_path.write_text(good)
    os.kill(agent.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "config_reloaded" not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "config_reloaded" in agent.log()
    t0 = time.monotonic()
    assert agent.stop() == 0
    assert time.monotonic() - t0 < 5.0


def test_devices_file_world_readable_refused(tmp_path: Path) -> None:
    a = Agent(tmp_path, None, [device_table(DEVS[0])])
    a.devices_path.chmod(0o644)
    with pytest.raises(RuntimeError, match="world-readable"):
        a.start(timeout_s=10)


def test_secrets_never_logged(broker: Mosquitto, agent_factory: Any) -> None:
    agent = agent_factory(broker.port, extra={"agent": {"log_level": "DEBUG"}})
    write_toml(agent.config_path, agent.cfg)
    agent.start()
    fw = Forwarder(agent.udp_port)
    fw.push(uplink(DEVS[0], 1))
    fw.push(uplink(DEVS[0], 2, key=bytes(16)))
    time.sleep(0.5)
    devs = agent.ask("devices")
    agent.stop()
    for blob in (agent.log(), repr(devs)):
        assert NWK.hex() not in blob and APP.hex() not in blob
