"""Issue #17 must-show 2: ChirpStack's `command/down` over a real mosquitto -> a GWMP PULL_RESP
at the right concentrator time on the simulated packet forwarder's downlink socket -> its
TX_ACK -> `event/ack` (DownlinkTxAck) with the matching downlink_id; and refused ones: an
unknown gateway, a TX_ACK error (TOO_LATE), the next item tried as ChirpStack's forwarders do."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from chirpstack_api import gw
from google.protobuf import json_format

from hil.broker import Mosquitto
from tests.agentproc import Agent, Forwarder
from tests.durability_kit import frame
from tests.relay.kit import GW_A, PREFIX, RelaySub, decode, relay_agent, rxpk

UPLINK_TMST = 4_294_000_000  # the delay wraps the 32-bit counter
PHY = bytes.fromhex("60044433221000010000a1b2c3d4")


def _item(ctx: bytes, delay_s: int, freq: int = 868_300_000, sf: int = 9) -> gw.DownlinkFrameItem:
    item = gw.DownlinkFrameItem(phy_payload=PHY)
    ti = item.tx_info
    ti.frequency, ti.power, ti.board, ti.antenna = freq, 14, 0, 0
    lora = ti.modulation.lora
    lora.bandwidth, lora.spreading_factor, lora.code_rate = 125_000, sf, gw.CR_4_5
    lora.polarization_inversion = True
    ti.timing.delay.delay.seconds = delay_s
    ti.context = ctx
    return item


class Bench:
    """One agent with a relay, a simulated forwarder with an open downlink route, and one
    uplink already relayed (its context is what ChirpStack schedules against)."""

    def __init__(
        self, tmp: Path, broker: Mosquitto, as_json: bool = False, mode: str = "edge"
    ) -> None:
        self.as_json = as_json
        self.agent: Agent = relay_agent(
            tmp, broker.port, [], as_json=as_json, lorawan={"mode": mode}
        )
        self.sub = RelaySub(broker.port)
        self.agent.start()
        self.fw = Forwarder(self.agent.udp_port, GW_A)
        assert self.fw.open_downlink()[3] == 4  # PULL_ACK: the route is open
        up = frame({"eui": "", "addr": "260b0002"}, 1)
        self.fw.push_rxpk([rxpk(up, UPLINK_TMST)])
        ups = self.sub.wait("/event/up", 1)
        assert ups, self.agent.log()[-2000:]
        self.uplink = decode(*ups[0], as_json)
        assert isinstance(self.uplink, gw.UplinkFrame)

    def command(self, down: gw.DownlinkFrame, gateway: str = GW_A) -> None:
        if self.as_json:
            payload = json_format.MessageToJson(down).encode()
        else:
            payload = down.SerializeToString()
        self.sub.publish(f"{PREFIX}/gateway/{gateway}/command/down", payload)

    def ack(self, downlink_id: int, gateway: str = GW_A) -> gw.DownlinkTxAck:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for t, p in self.sub.of("/event/ack"):
                a = decode(t, p, self.as_json)
                assert isinstance(a, gw.DownlinkTxAck)
                if a.downlink_id == downlink_id:
                    assert t == f"{PREFIX}/gateway/{gateway}/event/ack"
                    assert a.gateway_id == gateway
                    return a
            time.sleep(0.02)
        raise AssertionError(f"no event/ack for {downlink_id}: {self.agent.log()[-2000:]}")

    def close(self) -> None:
        self.agent.kill()
        self.sub.close()
        self.fw.close()


@pytest.mark.parametrize(
    ("as_json", "mode"),
    [(False, "edge"), (True, "edge"), (False, "passive")],
    ids=["protobuf", "json", "passive"],
)
def test_command_down_round_trip(
    tmp_path: Path, broker: Mosquitto, as_json: bool, mode: str
) -> None:
    b = Bench(tmp_path / "a", broker, as_json, mode)
    try:
        ctx = b.uplink.rx_info.context
        assert ctx == UPLINK_TMST.to_bytes(4, "big")
        down = gw.DownlinkFrame(downlink_id=0xC0FFEE, gateway_id=GW_A)
        down.items.append(_item(ctx, 1))
        down.items.append(_item(ctx, 2, freq=869_525_000, sf=12))
        b.command(down)
        txpk = b.fw.pull_resp(timeout_s=5)  # answers TX_ACK (no error) like lora_pkt_fwd
        assert txpk is not None, b.agent.log()[-2000:]
        assert txpk["tmst"] == (UPLINK_TMST + 1_000_000) & 0xFFFFFFFF
        assert txpk["imme"] is False
        assert txpk["freq"] == 868.3 and txpk["datr"] == "SF9BW125" and txpk["codr"] == "4/5"
        assert txpk["ipol"] is True and txpk["powe"] == 14 and txpk["rfch"] == 0
        assert txpk["_phy"] == PHY and txpk["size"] == len(PHY)
        ack = b.ack(0xC0FFEE)
        assert [i.status for i in ack.items] == [gw.OK, gw.IGNORED]
    finally:
        b.close()


def test_refused_downlinks(tmp_path: Path, broker: Mosquitto) -> None:
    b = Bench(tmp_path / "a", broker)
    try:
        ctx = b.uplink.rx_info.context
        # 1. A gateway this agent has no route to: refused at once, nothing sent.
        other = "0102030405060708"
        down = gw.DownlinkFrame(downlink_id=1, gateway_id=other)
        down.items.append(_item(ctx, 1))
        b.command(down, gateway=other)
        ack = b.ack(1, gateway=other)
        assert [i.status for i in ack.items] == [gw.INTERNAL_ERROR]
        assert b.fw.pull_resp(timeout_s=0.5) is None, "nothing goes to the radio"
        # 2. One item, the forwarder says TOO_LATE: so does the ack.
        down = gw.DownlinkFrame(downlink_id=2, gateway_id=GW_A)
        down.items.append(_item(ctx, 1))
        b.command(down)
        assert b.fw.pull_resp(timeout_s=5, ack=False) is not None
        b.fw.tx_ack_error("TOO_LATE")
        assert [i.status for i in b.ack(2).items] == [gw.TOO_LATE]
        # 3. Two items: RX1 refused (COLLISION_PACKET), RX2 tried next and accepted.
        down = gw.DownlinkFrame(downlink_id=3, gateway_id=GW_A)
        down.items.append(_item(ctx, 1))
        down.items.append(_item(ctx, 2, freq=869_525_000, sf=12))
        b.command(down)
        assert b.fw.pull_resp(timeout_s=5, ack=False) is not None
        b.fw.tx_ack_error("COLLISION_PACKET")
        rx2 = b.fw.pull_resp(timeout_s=5)
        assert rx2 is not None
        assert rx2["tmst"] == (UPLINK_TMST + 2_000_000) & 0xFFFFFFFF
        assert rx2["freq"] == 869.525 and rx2["datr"] == "SF12BW125"
        assert [i.status for i in b.ack(3).items] == [gw.COLLISION_PACKET, gw.OK]
        # 4. Immediately (class C) and GPS epoch (class B) timings.
        down = gw.DownlinkFrame(downlink_id=4, gateway_id=GW_A)
        item = _item(b"", 0)
        item.tx_info.timing.immediately.SetInParent()
        down.items.append(item)
        b.command(down)
        txpk = b.fw.pull_resp(timeout_s=5)
        assert txpk is not None and txpk["imme"] is True and "tmst" not in txpk
        assert [i.status for i in b.ack(4).items] == [gw.OK]
        down = gw.DownlinkFrame(downlink_id=5, gateway_id=GW_A)
        item = _item(b"", 0)
        item.tx_info.timing.gps_epoch.time_since_gps_epoch.FromMilliseconds(1_449_000_123_456)
        down.items.append(item)
        b.command(down)
        txpk = b.fw.pull_resp(timeout_s=5)
        assert txpk is not None and txpk["tmms"] == 1_449_000_123_456 and "tmst" not in txpk
        assert [i.status for i in b.ack(5).items] == [gw.OK]
        # 5. Delay timing without a context cannot be scheduled: refused, nothing sent.
        down = gw.DownlinkFrame(downlink_id=6, gateway_id=GW_A)
        down.items.append(_item(b"", 1))
        b.command(down)
        assert [i.status for i in b.ack(6).items] == [gw.INTERNAL_ERROR]
        # 6. Garbage on command/down: counted, the daemon goes on.
        b.sub.publish(f"{PREFIX}/gateway/{GW_A}/command/down", b"\xff\x00garbage")
        down = gw.DownlinkFrame(downlink_id=7, gateway_id=GW_A)
        down.items.append(_item(ctx, 1))
        b.command(down)
        assert b.fw.pull_resp(timeout_s=5) is not None
        assert [i.status for i in b.ack(7).items] == [gw.OK]
        assert b.agent.counter("bad_input") >= 1
        assert base64.b64encode(PHY)  # the payload went out unchanged (checked above)
    finally:
        b.close()
