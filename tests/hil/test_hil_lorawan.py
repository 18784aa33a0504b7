"""hil's own LoRaWAN encoder against LORAWAN.md section 11/12 vectors, plus the device state machine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.airtime import airtime_ms, payload_symbols
from hil.lorawan_crypto import (
    LorawanSimError,
    build_data_frame,
    build_join_accept,
    build_join_request,
    cmac,
    derive_session_keys,
    open_data_frame,
    open_join_accept,
)
from hil.lorawan_device import DR_TABLE, LorawanDevice, choose_dr, sub_band

H = bytes.fromhex
ADDR = H("260b3c5a")
NWK = H("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = H("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")


def test_cmac_rfc4493() -> None:
    k = H("2b7e151628aed2a6abf7158809cf4f3c")
    assert cmac(k, b"").hex() == "bb1d6929e95937287fa37d129b756746"
    assert (
        cmac(k, H("6bc1bee22e409f96e93d7e117393172a")).hex() == "070a16b46b4d4144f79bdd9dd04a287c"
    )


def test_w1_unconfirmed_uplink() -> None:
    phy = build_data_frame(2, ADDR, 42, NWK, APP, f_port=1, payload=H("016700e1026850"), adr=True)
    assert phy.hex() == "405a3c0b26802a00016a485fefd2eefc1bd02b37"


def test_w2_confirmed_with_fopts() -> None:
    phy = build_data_frame(
        4,
        ADDR,
        43,
        NWK,
        APP,
        f_port=2,
        payload=bytes(range(0x30, 0x44)),
        fopts=H("030706fe0a"),
        adr=True,
    )
    assert (
        phy.hex() == "805a3c0b26852b00030706fe0a027a95da3efd9316a6dfa8cf89ad3b8792b4c4be0dacf9cbcc"
    )


def test_w3_fport0_uses_nwk_key() -> None:
    phy = build_data_frame(2, ADDR, 44, NWK, APP, f_port=0, payload=H("0206fe0a"))
    assert phy.hex() == "405a3c0b26002c000045e97b37f25b6d35"


def test_w4_fcnt_above_65535() -> None:
    phy = build_data_frame(2, ADDR, 65541, NWK, APP, f_port=1, payload=H("016700e1"), adr=True)
    assert phy.hex() == "405a3c0b26800500015b3f55cd7c3d581a"
    assert open_data_frame(phy, NWK, APP, 65530).fcnt32 == 65541
    with pytest.raises(LorawanSimError):
        open_data_frame(phy, NWK, APP, 0)  # counter taken as 5: the MIC fails


def test_w5_join_and_first_uplink() -> None:
    app_key = H("5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e")
    jr = build_join_request(H("70b3d57ed0001234"), H("0004a30b001c0530"), 1, app_key)
    assert jr.hex() == "00341200d07ed5b37030051c000ba304000100a028d19c"
    cflist = H("184f84e85684b85e84886684586e8400")
    ja = build_join_accept(app_key, 1, H("000000"), H("00f3a1b2"), 0, 1, cflist)
    assert ja.hex() == "2033449495404d70139357f7695c798cd8e0b1fe4216d690240c83d86ef0044976"
    assert (
        build_join_accept(app_key, 1, H("000000"), H("00f3a1b2")).hex()
        == "201ad6c982ea9bbca25da0e4697171ec3c"
    )
    opened = open_join_accept(ja, app_key)
    assert opened.dev_addr == H("00f3a1b2") and opened.cflist == cflist
    nwk, app = derive_session_keys(app_key, opened.join_nonce, opened.net_id, 1)
    assert nwk.hex() == "1b82c6739d26eb2f115f54fdbb9d3655"
    assert app.hex() == "2234dd7ac2b03c76bbee744098bb0d57"
    up = build_data_frame(2, H("00f3a1b2"), 0, nwk, app, f_port=2, payload=H("0bb8"), adr=True)
    assert up.hex() == "40b2a1f300800000027278bb49fbdf"


def test_w5_device_stack_joins() -> None:
    app_key = H("5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e")
    d = LorawanDevice(H("0004a30b001c0530"), join_eui=H("70b3d57ed0001234"), app_key=app_key)
    d.dev_nonce = 1
    tx = d.join_request(0.0)
    assert tx is not None and tx.phy.hex() == "00341200d07ed5b37030051c000ba304000100a028d19c"
    d.on_downlink(H("2033449495404d70139357f7695c798cd8e0b1fe4216d690240c83d86ef0044976"))
    assert d.joined and d.dev_addr == H("00f3a1b2") and len(d.channels) == 8
    up = d.uplink(1000.0, 2, H("0bb8"))
    assert up is not None and up.phy.hex() == "40b2a1f300800000027278bb49fbdf"
    assert d.dev_nonce == 2


def test_w6_downlink_ack() -> None:
    phy = build_data_frame(3, ADDR, 7, NWK, APP, ack=True)
    assert phy.hex() == "605a3c0b2620070014496b6e"
    f = open_data_frame(phy, NWK, APP, 7)
    assert f.ack and f.f_port is None and f.fcnt32 == 7


def test_w7_flipped_bit_rejected() -> None:
    with pytest.raises(LorawanSimError):
        open_data_frame(H("405a3c0b26802a00016a485fefd2eefd1bd02b37"), NWK, APP, 42)


AIRTIME_TABLE = [
    (13, 125, [46.336, 82.432, 164.864, 288.768, 577.536, 1155.072]),
    (13, 250, [23.168, 41.216, 82.432, 144.384, 288.768, 577.536]),
    (13, 500, [11.584, 20.608, 41.216, 72.192, 144.384, 288.768]),
    (23, 125, [61.696, 113.152, 205.824, 370.688, 823.296, 1482.752]),
    (23, 250, [30.848, 56.576, 102.912, 185.344, 370.688, 741.376]),
    (23, 500, [15.424, 28.288, 51.456, 92.672, 185.344, 329.728]),
    (51, 125, [102.656, 184.832, 328.704, 616.448, 1314.816, 2465.792]),
    (51, 250, [51.328, 92.416, 164.352, 308.224, 575.488, 1232.896]),
    (51, 500, [25.664, 46.208, 82.176, 154.112, 287.744, 534.528]),
]


@pytest.mark.parametrize(("pl", "bw", "row"), AIRTIME_TABLE)
def test_airtime_table(pl: int, bw: int, row: list[float]) -> None:
    for sf, want in zip(range(7, 13), row, strict=True):
        assert airtime_ms(pl, sf, bw) == pytest.approx(want, abs=1e-6)


def test_airtime_cross_checks() -> None:
    assert payload_symbols(50, 12, 125) == 58
    assert airtime_ms(12, 7, 125, crc=False) == pytest.approx(41.216)


def _abp() -> LorawanDevice:
    return LorawanDevice(H("70b3d57ed0000001"), dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP)


def test_abp_counters_and_duty_cycle() -> None:
    d = _abp()
    a = d.uplink(0.0, 85, b"\x01\x75\x50")
    assert a is not None and a.fcnt == 0 and sub_band(a.freq_hz) in ("g", "g1")
    # The next uplink on the same sub-band must wait T * 99; the other sub-band is still free.
    b = d.uplink(0.1, 85, b"\x01\x75\x50")
    assert b is not None and sub_band(b.freq_hz) != sub_band(a.freq_hz) and b.fcnt == 1
    assert d.uplink(0.2, 85, b"\x01") is None and d.fcnt_up == 2
    assert d.earliest_tx_s() == pytest.approx(0.0 + a.airtime_ms / 1000 * 100)


def test_confirmed_retransmission_same_bytes_then_ack() -> None:
    d = _abp()
    first = d.uplink(0.0, 2, b"hello", confirmed=True)
    assert first is not None and first.phy[0] == 0x80
    again = d.retransmission(100.0)
    assert again is not None and again.phy == first.phy and again.attempt == 2
    ack = build_data_frame(3, ADDR, 0, NWK, APP, ack=True)
    assert d.on_downlink(ack).ack and d.pending is None and d.stats.acks == 1
    assert d.retransmission(200.0) is None
    with pytest.raises(LorawanSimError):
        d.on_downlink(ack)  # the same FCntDown again is not accepted twice: the MIC uses 1


def test_retries_are_bounded() -> None:
    d = _abp()
    d.nb_trans_confirmed = 2
    assert d.uplink(0.0, 2, b"x", confirmed=True) is not None
    assert d.retransmission(1000.0) is not None
    assert d.retransmission(2000.0) is None and d.stats.gave_up == 1


def test_choose_dr() -> None:
    assert choose_dr(10.0) == 5
    assert choose_dr(-10.0) == 2 and choose_dr(-11.0) == 1 and DR_TABLE[1] == (11, 125)
    assert choose_dr(-30.0) == 0


@settings(max_examples=200)
@given(
    fcnt=st.integers(0, 0xFFFFFFFF),
    port=st.integers(1, 223),
    payload=st.binary(max_size=51),
    confirmed=st.booleans(),
)
def test_round_trip(fcnt: int, port: int, payload: bytes, confirmed: bool) -> None:
    phy = build_data_frame(
        4 if confirmed else 2, ADDR, fcnt, NWK, APP, f_port=port, payload=payload
    )
    f = open_data_frame(phy, NWK, APP, fcnt & ~0xFFFF)
    assert (f.fcnt32, f.f_port, f.payload) == (fcnt, port, payload)


def test_device_applies_link_adr_req_and_answers() -> None:
    """The simulated stack obeys the agent's LinkADRReq (the agent's own builder, after a
    LinkCheckAns it skips): new DR and power on air, LinkADRAns in the next uplink."""
    from gateway_agent.lorawan.mac import link_adr_req, link_check_ans, parse_mac_commands

    d = _abp()
    d.dr = 0
    req = link_check_ans(10, 1) + link_adr_req(5, 2, 0, ch_mask_cntl=6, nb_trans=1)
    d.on_downlink(build_data_frame(3, ADDR, 0, NWK, APP, fopts=req))
    assert (d.dr, d.tx_power, d.stats.adr_changes) == (5, 2, 1)
    tx = d.uplink(0.0, 1, b"\x01")
    assert tx is not None and (tx.sf, tx.bw_khz, tx.power_offset_db) == (7, 125, -4.0)
    f = open_data_frame(tx.phy, NWK, APP, 0)
    (ans,) = parse_mac_commands(f.fopts, uplink=True)
    assert ans.name == "LinkADRAns" and ans.raw == H("0307")
    later = d.uplink(1000.0, 1, b"\x01")
    assert later is not None and open_data_frame(later.phy, NWK, APP, 1).fopts == b"", "once"
    # A data rate the device lacks is refused (data-rate bit clear), nothing changes.
    d.on_downlink(build_data_frame(3, ADDR, 1, NWK, APP, fopts=link_adr_req(9, 0, 0, 6)))
    assert (d.dr, d.tx_power, d.mac_out) == (5, 2, H("0305"))
