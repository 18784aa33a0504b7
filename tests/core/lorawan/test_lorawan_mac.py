"""MAC commands: direction tables, field decoding, unknown CIDs, builders, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.errors import FrameError
from gateway_agent.lorawan import mac
from gateway_agent.lorawan.downlink import gps_time, mac_answers
from gateway_agent.lorawan.mac import MacCommand, parse_mac_commands
from gateway_agent.lorawan.radio import RxInfo

H = bytes.fromhex


def test_lorawan_md_fopts_example() -> None:
    cmds = parse_mac_commands(H("030706fe0a"), uplink=True)
    assert [(c.cid, c.name, c.raw.hex()) for c in cmds] == [
        (3, "LinkADRAns", "0307"),
        (6, "DevStatusAns", "06fe0a"),
    ]
    assert dict(cmds[1].fields) == {"battery": 254, "margin": 10}


def test_same_cid_differs_by_direction() -> None:
    down = parse_mac_commands(H("035ff0ff01"), uplink=False)
    assert [c.name for c in down] == ["LinkADRReq"]
    assert dict(down[0].fields) == {
        "data_rate": 5,
        "tx_power": 15,
        "ch_mask": 0xFFF0,
        "ch_mask_cntl": 0,
        "nb_trans": 1,
    }
    up = parse_mac_commands(H("0307"), uplink=True)
    assert up[0].name == "LinkADRAns"


@pytest.mark.parametrize(
    ("hex_", "uplink", "name", "fields"),
    [
        ("020a03", False, "LinkCheckAns", {"margin": 10, "gw_cnt": 3}),
        ("02", True, "LinkCheckReq", {}),
        ("063f", True, "Truncated", {}),
        ("06ff3f", True, "DevStatusAns", {"battery": 255, "margin": -1}),
        (
            "0520184f84",
            False,
            "RXParamSetupReq",
            {"rx1_dr_offset": 2, "rx2_data_rate": 0, "freq_hz": 867_100_000},
        ),
        (
            "0703184f8450",
            False,
            "NewChannelReq",
            {"ch_index": 3, "freq_hz": 867_100_000, "max_dr": 5, "min_dr": 0},
        ),
        ("0800", False, "RXTimingSetupReq", {"delay_s": 1}),
        ("0d", True, "DeviceTimeReq", {}),
        ("0d0100000080", False, "DeviceTimeAns", {"gps_seconds": 1, "fraction_256": 128}),
    ],
)
def test_fields(hex_: str, uplink: bool, name: str, fields: dict[str, object]) -> None:
    (c,) = parse_mac_commands(H(hex_), uplink, lenient=True)
    assert c.name == name and dict(c.fields) == fields


def test_unknown_and_proprietary_cids_stop_parsing() -> None:
    cmds = parse_mac_commands(H("02" + "80aabb02"), uplink=True)
    assert [c.name for c in cmds] == ["LinkCheckReq", "Proprietary"]
    assert cmds[1].raw == H("80aabb02")
    cmds = parse_mac_commands(H("7f0102"), uplink=False)
    assert cmds == (MacCommand(0x7F, "Unknown", cmds[0].fields, H("7f0102")),)
    # 0x0E has no uplink meaning.
    assert parse_mac_commands(H("0e00"), uplink=True)[0].name == "Unknown"


def test_truncated_raises_unless_lenient() -> None:
    with pytest.raises(FrameError) as ei:
        parse_mac_commands(H("0307" + "06fe"), uplink=True)
    assert ei.value.reason == "mac_truncated"


def test_builders_parse_back() -> None:
    blob = (
        mac.link_check_ans(12, 2)
        + mac.dev_status_req()
        + mac.device_time_ans(1_400_000_000, 64)
        + mac.link_adr_req(5, 1, 0x0007, nb_trans=1)
        + mac.rx_timing_setup_req(1)
        + mac.duty_cycle_req(0)
    )
    cmds = parse_mac_commands(blob, uplink=False)
    assert [c.name for c in cmds] == [
        "LinkCheckAns",
        "DevStatusReq",
        "DeviceTimeAns",
        "LinkADRReq",
        "RXTimingSetupReq",
        "DutyCycleReq",
    ]
    assert dict(cmds[0].fields) == {"margin": 12, "gw_cnt": 2}
    assert dict(cmds[2].fields) == {"gps_seconds": 1_400_000_000, "fraction_256": 64}
    assert cmds[3].fields["ch_mask"] == 7
    assert mac.link_check_ans(300, 1)[1] == 254
    assert mac.snr_margin_db(-7.5, 7) == 0 and mac.snr_margin_db(2.5, 12) == 22


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_arbitrary_bytes_raise_only_frame_error(data: bytes, uplink: bool) -> None:
    reason = None
    try:
        cmds = parse_mac_commands(data, uplink)
    except FrameError as e:
        reason = e.reason
    if reason is None:
        assert b"".join(c.raw for c in cmds) == data
    else:
        assert reason == "mac_truncated"
    lenient = parse_mac_commands(data, uplink, lenient=True)
    assert b"".join(c.raw for c in lenient) == data


# -- the answers the network gives itself (LinkCheckReq, DeviceTimeReq) ----------------------


def _rx(gw: str, snr: float | None, sf: int | None = 9) -> RxInfo:
    return RxInfo(gw, 0.0, 0.0, 868_100_000, sf=sf, bw_khz=125, snr_db=snr, tmst=1)


def test_gps_time_of_a_known_instant() -> None:
    # 2026-01-01T00:00:00Z: GPS week 2399 (from 2025-12-28) + 4 days, plus the 18 leap seconds.
    assert 2399 * 604_800 + 4 * 86_400 + 18 == 1_451_260_818
    assert gps_time(1_767_225_600.0) == (1_451_260_818, 0)
    assert gps_time(1_767_225_600.5) == (1_451_260_818, 128)
    assert gps_time(1_767_225_600.999999)[1] == 255


def test_mac_answers_link_check_and_device_time_once_each() -> None:
    req = parse_mac_commands(H("020d02"), uplink=True)  # LinkCheckReq, DeviceTimeReq, again
    rx = (_rx("a", 2.5), _rx("b", -3.0), _rx("a", -9.0))  # best first; gateway a twice
    fopts, names = mac_answers(req, rx, 1_767_225_600.25)
    assert names == ("LinkCheckAns", "DeviceTimeAns")
    down = parse_mac_commands(fopts, uplink=False)
    assert [c.name for c in down] == ["LinkCheckAns", "DeviceTimeAns"]
    assert dict(down[0].fields) == {"margin": 15, "gw_cnt": 2}  # 2.5 dB over SF9's -12.5 dB
    assert fopts[3:] == mac.device_time_ans(1_451_260_818, 64)
    assert len(fopts) == 9


def test_mac_answers_ignore_what_the_network_does_not_answer() -> None:
    cmds = parse_mac_commands(H("030706fe0a"), uplink=True)  # LinkADRAns, DevStatusAns
    assert mac_answers(cmds, (_rx("a", 1.0),), 0.0) == (b"", ())
    # FSK or a missing SNR: no margin known, still an answer with the gateway count.
    fopts, _ = mac_answers(parse_mac_commands(H("02"), uplink=True), (_rx("a", None, None),), 0.0)
    assert fopts == mac.link_check_ans(0, 1)
