"""The relay's conversions (gateway_agent/relay/frames.py, jsonmap.py) against ChirpStack's own
classes: the fast JSON mapping equals protobuf's, downlink items become the right txpk values,
pseudo-EUIs are stable, the gateway's time is read exactly."""

from __future__ import annotations

import json
import random

import pytest
from chirpstack_api import gw
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from gateway_agent.lorawan.radio import RadioFrame, RxInfo
from gateway_agent.relay import frames as fr
from gateway_agent.relay.jsonmap import uplink_json
from gateway_agent.sources.gwmp_wire import txpk


def _frame(rng: random.Random) -> RadioFrame:
    opt = lambda v: v if rng.random() < 0.7 else None  # noqa: E731
    rx = RxInfo(
        gateway_id=rng.choice(["b827ebfffe6c1a2b", "serial:/dev/ttyUSB0"]),
        rx_mono=0.0,
        rx_wall=1_765_000_000 + rng.random() * 1e6,
        freq_hz=rng.choice([868_100_000, 867_900_000, 869_525_000]),
        sf=rng.randint(7, 12),
        bw_khz=rng.choice([125, 250, 500]),
        code_rate=opt(rng.choice(["4/5", "4/6", "4/8"])),
        rssi_dbm=opt(float(rng.randint(-130, -20))),
        snr_db=opt(rng.randint(-200, 130) / 10),
        channel=opt(rng.randint(0, 9)),
        rf_chain=opt(rng.randint(0, 1)),
        board=opt(rng.randint(0, 2)),
        antenna=opt(rng.randint(0, 1)),
        tmst=opt(rng.randint(0, 0xFFFFFFFF)),
        gw_time=opt(
            f"2026-12-0{rng.randint(1, 9)}T1{rng.randint(0, 9)}:12:31.{rng.randint(0, 999999):06d}Z"
        ),
        tmms=opt(rng.randint(1, 2**41)),
    )
    return RadioFrame(bytes(rng.randrange(256) for _ in range(rng.randint(12, 60))), rx)


def test_fast_json_mapping_is_protobufs() -> None:
    rng = random.Random(17)
    for i in range(2000):
        f = _frame(rng)
        loc = {"lati": 51.5, "long": -0.12, "alti": 31.0} if i % 3 == 0 else None
        up = fr.uplink_frame(f, fr.gateway_eui(f.rx.gateway_id, "agent"), loc)
        fast = json.loads(uplink_json(up))
        assert fast == json.loads(json_format.MessageToJson(up)), up
        back = gw.UplinkFrame()
        json_format.Parse(fr.body_for_publish(up.SerializeToString(), True).decode(), back)
        assert back == up


def test_unusual_frames_take_the_generic_path() -> None:
    up = gw.UplinkFrame(phy_payload=b"x" * 12)
    up.rx_info.metadata["k"] = "v"
    up.tx_info.modulation.fsk.datarate = 50_000
    assert json.loads(uplink_json(up)) == json.loads(json_format.MessageToJson(up))


def test_pseudo_eui_is_stable_and_distinct() -> None:
    a = fr.gateway_eui("serial:/dev/ttyUSB0", "school-17")
    assert a == fr.gateway_eui("serial:/dev/ttyUSB0", "school-17") and fr.is_eui(a)
    assert a != fr.gateway_eui("serial:/dev/ttyUSB1", "school-17")
    assert a != fr.gateway_eui("serial:/dev/ttyUSB0", "school-18")
    assert fr.gateway_eui("b827ebfffe6c1a2b", "x") == "b827ebfffe6c1a2b"


@pytest.mark.parametrize(
    "s",
    [
        "2026-12-06T10:12:31.402117Z",
        "2026-12-06T23:59:59.123456789Z",
        "2026-12-06T10:12:31Z",
        "2026-12-06T10:12:31+01:00",
        "2024-02-29T00:00:00.5Z",
    ],
)
def test_gateway_time_read_exactly(s: str) -> None:
    rx = RxInfo("b827ebfffe6c1a2b", 0.0, 1.0, 868_100_000, sf=7, bw_khz=125, gw_time=s)
    up = fr.uplink_frame(RadioFrame(bytes(12), rx), "b827ebfffe6c1a2b")
    want = Timestamp()
    want.FromJsonString(s)
    assert up.rx_info.gw_time == want


@pytest.mark.parametrize("s", ["2026-12-06T25:12:31Z", "2026-13-06T10:12:31Z", "yesterday"])
def test_unreadable_gateway_time_is_the_reception_time(s: str) -> None:
    rx = RxInfo("b827ebfffe6c1a2b", 0.0, 1_765_000_000.25, 868_100_000, sf=7, bw_khz=125, gw_time=s)
    up = fr.uplink_frame(RadioFrame(bytes(12), rx), "b827ebfffe6c1a2b")
    assert up.rx_info.gw_time.ToJsonString() == "2025-12-06T05:46:40.250Z"


def _item(**timing: object) -> gw.DownlinkFrameItem:
    item = gw.DownlinkFrameItem(phy_payload=b"\x60" + bytes(11))
    ti = item.tx_info
    ti.frequency, ti.power, ti.board, ti.antenna = 869_525_000, 27, 1, 1
    lo = ti.modulation.lora
    lo.bandwidth, lo.spreading_factor, lo.code_rate = 125_000, 12, gw.CR_4_6
    lo.polarization_inversion = True
    ti.context = (0xFFFFFFF0).to_bytes(4, "big") + b"extra"
    ti.timing.delay.delay.FromMicroseconds(2_000_017)
    return item


def test_downlink_item_to_txpk() -> None:
    tx = fr.downlink_tx("b827ebfffe6c1a2b", 9, 1, _item())
    p = txpk(tx)
    assert p["tmst"] == (0xFFFFFFF0 + 2_000_017) & 0xFFFFFFFF and p["imme"] is False
    assert (p["freq"], p["powe"], p["datr"], p["codr"]) == (869.525, 27, "SF12BW125", "4/6")
    assert (p["ipol"], p["brd"], p["ant"], p["size"]) == (True, 1, 1, 12)
    assert dict(tx.extra) == {"downlink_id": "9", "item": "1"} and tx.purpose == "relay"


def test_downlink_items_refused_with_a_status() -> None:
    bad = _item()
    bad.tx_info.modulation.fsk.datarate = 50_000
    with pytest.raises(fr.DownlinkRefused):
        fr.downlink_tx("b827ebfffe6c1a2b", 1, 0, bad)
    far = _item()
    far.tx_info.frequency = 5
    with pytest.raises(fr.DownlinkRefused) as e:
        fr.downlink_tx("b827ebfffe6c1a2b", 1, 0, far)
    assert e.value.status == gw.TX_FREQ
    with pytest.raises(fr.DownlinkRefused):
        fr.parse_downlink(b"{not json", True)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (None, gw.OK),
        ("NONE", gw.OK),
        ("TOO_LATE", gw.TOO_LATE),
        ("TOO_EARLY", gw.TOO_EARLY),
        ("COLLISION_PACKET", gw.COLLISION_PACKET),
        ("COLLISION_BEACON", gw.COLLISION_BEACON),
        ("TX_FREQ", gw.TX_FREQ),
        ("TX_POWER", gw.TX_POWER),
        ("GPS_UNLOCKED", gw.GPS_UNLOCKED),
        ("SOMETHING_NEW", gw.INTERNAL_ERROR),
    ],
)
def test_tx_ack_errors_map_to_chirpstack_statuses(error: str | None, status: int) -> None:
    assert fr.ack_status(error) == status
