"""EU868 table and class-A timing: the GWMP.md section 9 txpk values, tmst wrap, RX1/RX2."""

from __future__ import annotations

import pytest

from gateway_agent.errors import FrameError
from gateway_agent.lorawan.downlink import build_downlink
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.lorawan.region import (
    EU868,
    REGIONS,
    dr_from_sf_bw,
    join_accept_tx,
    rx1_tx,
    rx1_window,
    rx2_tx,
    rx2_window,
    sf_bw_from_dr,
    uplink_dr,
)
from gateway_agent.lorawan.session import DeviceSession

H = bytes.fromhex
JA = H("2033449495404d70139357f7695c798cd8e0b1fe4216d690240c83d86ef0044976")
GW = "b827ebfffe6c1a2b"


def rx(tmst: int | None, freq: int = 868_100_000, sf: int = 10, bw: int = 125) -> RxInfo:
    return RxInfo(GW, 0.0, 0.0, freq, sf=sf, bw_khz=bw, snr_db=9.2, rssi_dbm=-71, tmst=tmst)


def test_eu868_table() -> None:
    r = REGIONS["EU868"]
    assert r is EU868
    assert [(d.dr, d.sf, d.bw_khz) for d in r.data_rates[:7]] == [
        (0, 12, 125),
        (1, 11, 125),
        (2, 10, 125),
        (3, 9, 125),
        (4, 8, 125),
        (5, 7, 125),
        (6, 7, 250),
    ]
    assert r.data_rate(7).modulation == "FSK" and r.data_rate(7).bitrate == 50_000
    assert [d.max_mac_payload for d in r.data_rates] == [59, 59, 59, 123, 230, 230, 230, 230]
    assert [d.max_frm_payload for d in r.data_rates] == [51, 51, 51, 115, 222, 222, 222, 222]
    assert r.data_rate(0).max_phy_payload == 64
    assert r.default_channels_hz == (868_100_000, 868_300_000, 868_500_000)
    assert (r.rx2_freq_hz, r.rx2_dr) == (869_525_000, 0)
    assert (r.receive_delay1_s, r.receive_delay2_s) == (1, 2)
    assert (r.join_accept_delay1_s, r.join_accept_delay2_s) == (5, 6)
    assert r.max_eirp_dbm == 16
    assert r.sub_band(868_300_000).duty_cycle == 0.01  # type: ignore[union-attr]
    assert r.sub_band(869_525_000).duty_cycle == 0.10  # type: ignore[union-attr]
    assert r.sub_band(867_100_000).duty_cycle == 0.01  # type: ignore[union-attr]
    assert r.sub_band(915_000_000) is None


def test_dr_conversions() -> None:
    assert dr_from_sf_bw(EU868, 7, 250) == 6 and dr_from_sf_bw(EU868, 12, 125) == 0
    assert sf_bw_from_dr(EU868, 3) == (9, 125)
    for bad in (
        lambda: dr_from_sf_bw(EU868, 7, 500),
        lambda: sf_bw_from_dr(EU868, 7),
        lambda: sf_bw_from_dr(EU868, 9),
    ):
        with pytest.raises(FrameError) as ei:
            bad()
        assert ei.value.reason == "unknown_dr"
    fsk = RxInfo(GW, 0, 0, 868_800_000, modulation="FSK", bitrate=50_000, tmst=1)
    assert uplink_dr(EU868, fsk) == 7


def test_rx_windows() -> None:
    assert rx1_window(EU868, 868_500_000, 5, 0) == (868_500_000, 5)
    assert rx1_window(EU868, 868_500_000, 2, 3) == (868_500_000, 0)
    assert rx1_window(EU868, 868_500_000, 5, 2) == (868_500_000, 3)
    with pytest.raises(ValueError, match="RX1DROffset"):
        rx1_window(EU868, 868_500_000, 5, 6)
    assert rx2_window(EU868) == (869_525_000, 0)
    assert rx2_window(EU868, 869_525_000, 3) == (869_525_000, 3)


def test_gwmp_section_9_join_accept_txpk_values() -> None:
    r = rx(2_000_000_000)
    tx1 = join_accept_tx(EU868, r, JA)
    assert (tx1.tmst, tx1.freq_hz, tx1.sf, tx1.bw_khz) == (2_005_000_000, 868_100_000, 10, 125)
    assert (tx1.gateway_id, tx1.power_dbm, tx1.code_rate, tx1.rf_chain) == (GW, 14, "4/5", 0)
    assert tx1.purpose == "join_accept" and tx1.phy_payload == JA and not tx1.immediate
    tx2 = join_accept_tx(EU868, r, JA, rx2=True)
    assert (tx2.tmst, tx2.freq_hz, tx2.sf, tx2.bw_khz) == (2_006_000_000, 869_525_000, 12, 125)


def test_gwmp_section_9_ack_in_rx1() -> None:
    s = DeviceSession(
        bytes(8),
        H("260b3c5a"),
        H("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c"),
        H("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c"),
        fcnt_up=42,
        fcnt_down=7,
    )
    phy = build_downlink(s, 7, ack=True)
    tx = rx1_tx(EU868, rx(3_512_348_611, 868_500_000, 7), phy, purpose="ack")
    assert (tx.tmst, tx.freq_hz, tx.sf, tx.bw_khz, tx.purpose) == (
        3_513_348_611,
        868_500_000,
        7,
        125,
        "ack",
    )
    assert tx.phy_payload.hex() == "605a3c0b2620070014496b6e"
    tx2 = rx2_tx(EU868, rx(3_512_348_611, 868_500_000, 7), phy, rx1_delay_s=1)
    assert (tx2.tmst, tx2.freq_hz, tx2.sf) == (3_514_348_611, 869_525_000, 12)
    tx3 = rx1_tx(EU868, rx(1000, 868_500_000, 7), phy, rx1_delay_s=3, rx1_dr_offset=2)
    assert (tx3.tmst, tx3.sf) == (3_001_000, 9)


def test_tmst_wrap() -> None:
    tx = join_accept_tx(EU868, rx(4_294_000_000), JA)
    assert tx.tmst == 4_032_704 == (4_294_000_000 + 5_000_000) & 0xFFFFFFFF


def test_no_tmst_cannot_schedule() -> None:
    with pytest.raises(FrameError) as ei:
        join_accept_tx(EU868, rx(None), JA)
    assert ei.value.reason == "no_tmst"
