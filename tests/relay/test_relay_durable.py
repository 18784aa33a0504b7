"""Issue #17 durable relay with the real daemon: frames heard while the broker is down wait in
the relay's lane and arrive in the order heard; a SIGKILL with frames queued loses none; a
join-request older than its join window is dropped and counted, never relayed late."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from chirpstack_api import gw

from hil.lorawan_crypto import build_join_request
from tests.agentproc import Agent, Forwarder
from tests.durability_kit import frame, persistent_broker
from tests.relay.kit import GW_A, RelaySub, decode, relay_agent, rxpk

STRANGER = {"eui": "", "addr": "260b0003"}  # relayed though this agent has no keys for it


def _send(agent: Agent, phys: list[bytes], per_datagram: int = 20) -> None:
    fw = Forwarder(agent.udp_port, GW_A)
    for i in range(0, len(phys), per_datagram):
        chunk = phys[i : i + per_datagram]
        fw.push_rxpk([rxpk(p, (1000 * (i + k)) & 0xFFFFFFFF) for k, p in enumerate(chunk)])
    fw.close()


def _lane(agent: Agent) -> dict[str, Any]:
    return dict(agent.ask("outbox")["outputs"].get("relay", {}))


def _wait(cond: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def _first_order(sub: RelaySub) -> list[bytes]:
    seen: dict[bytes, None] = {}
    for t, p in sub.of("/event/up"):
        up = decode(t, p, False)
        assert isinstance(up, gw.UplinkFrame)
        seen.setdefault(up.phy_payload, None)
    return list(seen)


def test_outage_then_everything_in_the_order_heard(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    agent = relay_agent(tmp_path / "a", broker.port, [])
    sub = RelaySub(broker.port)
    phys = [frame(STRANGER, f) for f in range(3000)]
    try:
        agent.start()
        _send(agent, phys[:500])
        assert _wait(lambda: len(_first_order(sub)) >= 500, 30), agent.log()[-2000:]
        broker.stop()
        _send(agent, phys[500:])
        assert _wait(lambda: _lane(agent).get("depth") == 2500, 30), _lane(agent)
        lane = _lane(agent)
        assert lane["state"] == "down" and lane["type"] == "relay"
        assert lane["relay"]["connected"] is False and lane["relay"]["gateways"] == [GW_A]
        broker.start()
        assert _wait(lambda: len(_first_order(sub)) >= 3000, 60), len(_first_order(sub))
        assert _first_order(sub) == phys, "every frame, in the order heard"
        assert _wait(lambda: _lane(agent)["relay"]["connected"] is True, 10)
        assert _wait(lambda: _lane(agent).get("depth") == 0, 10)
        assert agent.stop() == 0
    finally:
        agent.kill()
        sub.close()
        broker.stop()


def test_sigkill_with_frames_queued_loses_none(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    agent = relay_agent(tmp_path / "a", broker.port, [])
    sub = RelaySub(broker.port)
    phys = [frame(STRANGER, f) for f in range(1000)]
    try:
        broker.stop()
        agent.start()
        _send(agent, phys)
        assert _wait(lambda: _lane(agent).get("depth") == 1000, 30), _lane(agent)
        agent.kill()  # SIGKILL: the lane is all there is
        broker.start()
        agent.start()
        assert _wait(lambda: len(_first_order(sub)) >= 1000, 60), len(_first_order(sub))
        assert _first_order(sub) == phys
    finally:
        agent.kill()
        sub.close()
        broker.stop()


def test_stale_join_request_is_dropped_and_counted(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    agent = relay_agent(tmp_path / "a", broker.port, [], relay={"join_window_s": 1})
    sub = RelaySub(broker.port)
    join = build_join_request(bytes(8), bytes.fromhex("70b3d57ed0000009"), 3, bytes(16))
    data = frame(STRANGER, 1)
    try:
        broker.stop()
        agent.start()
        _send(agent, [join, data])
        assert _wait(lambda: _lane(agent).get("depth") == 2, 10), _lane(agent)
        assert _lane(agent)["by_kind"] == {"relay_join": 1, "relay_up": 1}
        time.sleep(1.5)  # past the join window while the backhaul is down
        broker.start()
        assert _wait(lambda: _first_order(sub) == [data], 30), _first_order(sub)
        assert _wait(lambda: _lane(agent).get("depth") == 0, 10)
        lane = _lane(agent)
        assert lane["dropped"] == {"unsent_readings": 1}, lane
        expired = {k: v for k, v in agent.counters().items() if "join_expired" in k}
        assert sum(expired.values()) == 1, agent.counters()
        # A fresh join-request goes out at once.
        join2 = build_join_request(bytes(8), bytes.fromhex("70b3d57ed0000009"), 4, bytes(16))
        _send(agent, [join2])
        assert _wait(lambda: join2 in _first_order(sub), 10)
        assert join not in _first_order(sub)
    finally:
        agent.kill()
        sub.close()
        broker.stop()
