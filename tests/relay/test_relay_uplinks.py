"""Issue #17 must-show 1: every message the agent publishes on the relay topics, decoded with
ChirpStack's own `chirpstack_api.gw` classes and checked against the frames sent (real daemon,
real mosquitto, GWMP over UDP); protobuf and the JSON mapping."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from chirpstack_api import gw

from hil.broker import Mosquitto
from hil.lorawan_crypto import build_join_request
from tests.agentproc import Forwarder, write_toml
from tests.durability_kit import fleet, frame
from tests.relay.kit import GW_A, PREFIX, RelaySub, decode, relay_agent, rxpk

GW_B = "0016c001ff10a235"


def _push(fw: Forwarder, body: dict) -> None:  # type: ignore[type-arg]
    fw.token = (fw.token + 1) & 0xFFFF
    fw.sock.sendto(
        b"\x02" + fw.token.to_bytes(2, "big") + b"\x00" + fw.eui + json.dumps(body).encode(),
        ("127.0.0.1", fw.port),
    )
    assert fw.sock.recv(64)[3] == 1  # PUSH_ACK


@pytest.mark.parametrize("as_json", [False, True], ids=["protobuf", "json"])
def test_every_relay_message_decodes_and_matches(
    tmp_path: Path, broker: Mosquitto, as_json: bool
) -> None:
    devs = fleet(2)
    agent = relay_agent(tmp_path / "a", broker.port, devs, as_json=as_json)
    sub = RelaySub(broker.port)
    known = frame(devs[0], 7)
    unknown = frame({"eui": "", "addr": "260b0001"}, 3)  # a device whose keys it lacks
    join = build_join_request(bytes(8), bytes.fromhex("70b3d57ed0000001"), 12, bytes(16))
    sent = {
        known: (GW_A, rxpk(known, 3_512_348_611, rssi=-71, lsnr=9.2, chan=2, rfch=0)),
        unknown: (GW_A, rxpk(unknown, 4_000_000_000, freq=867.1, datr="SF12BW125")),
        join: (GW_B, rxpk(join, 17, rssi=-110, lsnr=-12.25, chan=7, datr="SF10BW125", brd=1)),
    }
    try:
        agent.start()
        a, b = Forwarder(agent.udp_port, GW_A), Forwarder(agent.udp_port, GW_B)
        stat = {"time": "2026-12-06 10:12:30 GMT", "lati": 51.5, "long": -0.12, "alti": 30}
        _push(a, {"stat": {**stat, "rxnb": 2}})  # the position comes with the stat object
        assert sub.wait("/state/conn", 1, timeout_s=10), "a stat alone makes the gateway known"
        _push(a, {"rxpk": [sent[known][1], sent[unknown][1]]})
        _push(b, {"rxpk": [sent[join][1]]})
        ups = sub.wait("/event/up", 3)
        conns = sub.wait("/state/conn", 2, timeout_s=10)

        def ok_by_gateway() -> dict[str, int]:
            n: dict[str, int] = {}
            for t, p in sub.of("/event/stats"):
                s = decode(t, p, as_json)
                n[s.gateway_id] = n.get(s.gateway_id, 0) + s.rx_packets_received_ok  # type: ignore[attr-defined]
            return n

        deadline = time.monotonic() + 10  # stats every second: the frames' come within two
        while ok_by_gateway() != {GW_A: 2, GW_B: 1} and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.2)  # one more round: still nothing counted twice
        stats = sub.of("/event/stats")
        assert len(ups) == 3, agent.log()[-3000:]
        for topic, payload in ups:
            up = decode(topic, payload, as_json)
            assert isinstance(up, gw.UplinkFrame)
            eui, rx = sent[up.phy_payload]
            r, t = up.rx_info, up.tx_info
            assert topic == f"{PREFIX}/gateway/{eui}/event/up"
            assert r.gateway_id == eui
            assert t.frequency == round(rx["freq"] * 1e6)
            sf, bw = rx["datr"][2:].split("BW")
            assert t.modulation.lora.spreading_factor == int(sf)
            assert t.modulation.lora.bandwidth == int(bw) * 1000
            assert t.modulation.lora.code_rate == gw.CR_4_5
            assert not t.modulation.lora.polarization_inversion
            assert r.rssi == rx["rssi"] and r.snr == pytest.approx(rx["lsnr"])
            assert (r.channel, r.rf_chain, r.board) == (rx["chan"], rx["rfch"], rx["brd"])
            assert r.context == rx["tmst"].to_bytes(4, "big")
            assert r.crc_status == gw.CRC_OK
            assert r.gw_time.ToJsonString() == "2026-12-06T10:12:31.402117Z"
            assert r.time_since_gps_epoch.ToMilliseconds() == rx["tmms"]
            assert r.uplink_id != 0
            if eui == GW_A:  # the stat object's position
                assert r.location.latitude == pytest.approx(51.5)
        assert {u[0] for u in ups} == {
            f"{PREFIX}/gateway/{GW_A}/event/up",
            f"{PREFIX}/gateway/{GW_B}/event/up",
        }
        for topic, payload in conns:
            c = decode(topic, payload, as_json)
            assert isinstance(c, gw.ConnState)
            assert topic == f"{PREFIX}/gateway/{c.gateway_id}/state/conn"
            assert c.state == gw.ConnState.ONLINE
        assert {decode(t, p, as_json).gateway_id for t, p in conns} == {GW_A, GW_B}  # type: ignore[attr-defined]
        per_gw: dict[str, list[gw.GatewayStats]] = {}
        for topic, payload in stats:
            s = decode(topic, payload, as_json)
            assert isinstance(s, gw.GatewayStats)
            assert topic == f"{PREFIX}/gateway/{s.gateway_id}/event/stats"
            assert abs(s.time.ToSeconds() - time.time()) < 30
            per_gw.setdefault(s.gateway_id, []).append(s)
        assert sum(s.rx_packets_received_ok for s in per_gw[GW_A]) == 2
        assert sum(s.rx_packets_received_ok for s in per_gw[GW_B]) == 1
        assert any(s.location.longitude == pytest.approx(-0.12) for s in per_gw[GW_A])
        freq_a: dict[int, int] = {}
        for s in per_gw[GW_A]:
            for f, n in s.rx_packets_per_frequency.items():
                freq_a[f] = freq_a.get(f, 0) + n
        assert freq_a == {868_300_000: 1, 867_100_000: 1}
        # Everything on the relay topics is one of ChirpStack's four messages.
        for topic, payload, _ in sub.messages:
            decode(topic, payload, as_json)
        # A clean stop says OFFLINE for each gateway (retained).
        assert agent.stop() == 0
        late = RelaySub(broker.port, f"{PREFIX}/gateway/+/state/conn")
        got = late.wait("/state/conn", 2, timeout_s=5)
        late.close()
        assert {
            (decode(t, p, as_json).gateway_id, decode(t, p, as_json).state)  # type: ignore[attr-defined]
            for t, p in got
        } == {(GW_A, gw.ConnState.OFFLINE), (GW_B, gw.ConnState.OFFLINE)}
    finally:
        agent.kill()
        sub.close()


def test_last_will_says_offline_when_the_agent_dies(tmp_path: Path, broker: Mosquitto) -> None:
    agent = relay_agent(tmp_path / "a", broker.port, [], relay={"stats_interval_s": 60})
    try:
        agent.start()
        fw = Forwarder(agent.udp_port, GW_A)
        fw.open_downlink()  # a PULL_DATA alone makes the gateway known
        sub = RelaySub(broker.port, f"{PREFIX}/gateway/{GW_A}/state/conn")
        first = sub.wait("/state/conn", 1, timeout_s=10)
        assert decode(*first[0], False).state == gw.ConnState.ONLINE  # type: ignore[attr-defined]
        agent.kill()  # SIGKILL: no goodbye; the broker's will speaks for it
        got = sub.wait("/state/conn", 2, timeout_s=10)
        assert decode(*got[-1], False).state == gw.ConnState.OFFLINE  # type: ignore[attr-defined]
        sub.close()
        fw.close()
    finally:
        agent.kill()


def test_a_gateway_gone_quiet_goes_offline_and_back(tmp_path: Path, broker: Mosquitto) -> None:
    agent = relay_agent(tmp_path / "a", broker.port, [], relay={"stats_interval_s": 60})
    agent.cfg["sources"][0]["route_stale_s"] = 1
    write_toml(agent.config_path, agent.cfg)
    sub = RelaySub(broker.port, f"{PREFIX}/gateway/{GW_A}/state/conn")
    try:
        agent.start()
        fw = Forwarder(agent.udp_port, GW_A)
        fw.open_downlink()
        states = lambda: [decode(t, p, False).state for t, p in sub.of("/state/conn")]  # type: ignore[attr-defined]  # noqa: E731
        assert _until(lambda: states() == [gw.ConnState.ONLINE], 10), states()
        # The packet forwarder stops: no keep-alive, no datagram.
        assert _until(lambda: states()[-1:] == [gw.ConnState.OFFLINE], 20), states()
        fw.keepalive()  # it is back
        assert _until(lambda: states()[-1:] == [gw.ConnState.ONLINE], 10), states()
        assert states() == [gw.ConnState.ONLINE, gw.ConnState.OFFLINE, gw.ConnState.ONLINE]
        fw.close()
    finally:
        agent.kill()
        sub.close()


def _until(cond: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(cond())  # type: ignore[operator]


def test_a_broker_of_its_own(tmp_path: Path, broker: Mosquitto) -> None:
    """host/port under [relay]: ChirpStack's broker, not [upstream]'s."""
    central = Mosquitto(workdir=tmp_path / "central")
    central.start()
    agent = relay_agent(
        tmp_path / "a",
        broker.port,
        [],
        relay={"host": "127.0.0.1", "port": central.port, "client_id": "school-17-relay"},
    )
    theirs, ours = RelaySub(central.port), RelaySub(broker.port)
    try:
        agent.start()
        phy = frame({"eui": "", "addr": "260b0004"}, 1)
        Forwarder(agent.udp_port, GW_A).push_rxpk([rxpk(phy, 5)])
        got = theirs.wait("/event/up", 1)
        assert got, f"nothing on the central broker; agent log:\n{agent.log()[-3000:]}"
        assert decode(*got[0], False).phy_payload == phy  # type: ignore[attr-defined]
        time.sleep(0.5)
        assert ours.of("/event/up") == [], "nothing relayed to [upstream]'s broker"
        assert "school-17-relay" in central.tail_log(200)
    finally:
        agent.kill()
        theirs.close()
        ours.close()
        central.stop()
