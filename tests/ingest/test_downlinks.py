"""Which receive window a class-A downlink goes out in (issue 3, LORAWAN.md 7.5 and 10): RX1 while
it can still reach the gateway in time and its sub-band has duty-cycle budget, else RX2, else
none (counted); and RX2 again after the gateway refused RX1 as too late."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from gateway_agent.ingest.downlinks import Downlinks
from gateway_agent.lorawan import region as lw_region
from gateway_agent.lorawan.airtime import airtime_ms
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.radio import DownlinkTx, RxInfo
from gateway_agent.lorawan.session import DeviceSession
from tests.ingest.test_ingest_pipeline import _direct, _make

GW = "b827ebfffe6c1a2b"
PHY = bytes(12)  # an ACK-sized frame


def _rx(age_s: float, freq_hz: int = 868_100_000, sf: int = 9) -> RxInfo:
    """A reception `age_s` seconds ago (agent clock), through a gateway we can transmit with."""
    now = time.monotonic()
    return RxInfo(GW, now - age_s, time.time() - age_s, freq_hz, sf=sf, bw_khz=125, tmst=10_000)


@pytest.fixture
def ing(tmp_path: Path) -> tuple[Downlinks, list[DownlinkTx]]:
    """The ingest's Downlinks, with a real store; what it sends is collected."""
    i = _make(tmp_path, _direct).downlinks
    sent: list[DownlinkTx] = []
    i.send_downlink = lambda tx: sent.append(tx) or True  # type: ignore[func-returns-value]
    return i, sent


def _ack(rx: RxInfo) -> DownlinkTx:
    return lw_region.class_a_tx(lw_region.EU868, rx, PHY, purpose="ack")


def test_class_a_tx_carries_rx2_as_its_fallback() -> None:
    rx = _rx(0.0)
    tx = _ack(rx)
    assert (tx.window, tx.tmst, tx.freq_hz, tx.sf) == ("rx1", 1_010_000, 868_100_000, 9)
    assert tx.send_by == pytest.approx(rx.rx_mono + 1 - lw_region.DOWNLINK_LEAD_S)
    fb = tx.fallback
    assert fb is not None and fb.fallback is None
    assert (fb.window, fb.tmst, fb.freq_hz, fb.sf) == ("rx2", 2_010_000, 869_525_000, 12)
    assert fb.send_by == pytest.approx(rx.rx_mono + 2 - lw_region.DOWNLINK_LEAD_S)
    assert fb.phy_payload == tx.phy_payload
    ja = lw_region.join_accept_windows(lw_region.EU868, rx, PHY)
    assert (ja.tmst, ja.fallback and ja.fallback.tmst) == (5_010_000, 6_010_000)
    assert ja.fallback is not None and ja.fallback.freq_hz == 869_525_000


def test_rx1_while_in_time(ing: tuple[Downlinks, list[DownlinkTx]]) -> None:
    i, sent = ing
    i.send(_ack(_rx(0.3)))
    assert [t.window for t in sent] == ["rx1"]
    assert i.counters.get("downlink_fallback") == 0


def test_rx2_when_rx1_can_no_longer_be_reached(ing: tuple[Downlinks, list[DownlinkTx]]) -> None:
    i, sent = ing
    i.send(_ack(_rx(0.95)))  # RX1 opens in 50 ms: a PULL_RESP now would be TOO_LATE
    assert [(t.window, t.tmst) for t in sent] == [("rx2", 2_010_000)]
    assert i.counters.get("downlink_fallback", reason="too_late", window="rx2") == 1


def test_none_when_both_windows_passed(ing: tuple[Downlinks, list[DownlinkTx]]) -> None:
    i, sent = ing
    i.send(_ack(_rx(1.95)))
    assert sent == []
    assert i.counters.get("downlink_missed", purpose="ack", reason="too_late") == 1


def test_rx2_when_the_rx1_sub_band_budget_is_spent(ing: tuple[Downlinks, list[DownlinkTx]]) -> None:
    """EU868 g1 (868.0-868.6 MHz) allows 1 % = 36 s of airtime an hour per gateway."""
    i, sent = ing
    one = airtime_ms(len(PHY), 9, 125, crc=False)
    fits = int(36_000 // one)
    for _ in range(fits):
        i.send(_ack(_rx(0.2)))
    assert [t.window for t in sent] == ["rx1"] * fits
    i.send(_ack(_rx(0.2)))
    assert sent[-1].window == "rx2" and sent[-1].freq_hz == 869_525_000
    assert i.counters.get("downlink_fallback", reason="duty_cycle") == 1
    # Another gateway has its own budget.
    other = RxInfo(
        "0000000000000001", time.monotonic(), time.time(), 868_100_000, sf=9, bw_khz=125, tmst=1
    )
    i.send(_ack(other))
    assert sent[-1].window == "rx1" and sent[-1].gateway_id == "0000000000000001"


def test_refused_rx1_goes_out_in_rx2_once(ing: tuple[Downlinks, list[DownlinkTx]]) -> None:
    i, sent = ing
    tx = _ack(_rx(0.3))
    i.send(tx)
    i.refused(sent[-1], "TOO_LATE")
    assert [t.window for t in sent] == ["rx1", "rx2"]
    assert i.counters.get("downlink_fallback", reason="refused", window="rx2") == 1
    i.refused(sent[-1], "TOO_LATE")  # RX2 refused too: nothing left
    assert len(sent) == 2
    assert i.counters.get("downlink_missed", reason="refused") == 1
    i.refused(tx, "TX_FREQ")  # not a timing problem: RX2 would fail the same way
    assert len(sent) == 2


def test_fsk_uplink_is_answered_in_rx2_only() -> None:
    rx = RxInfo(
        GW, time.monotonic(), time.time(), 868_800_000, modulation="FSK", bitrate=50_000, tmst=5
    )
    tx = lw_region.class_a_tx(lw_region.EU868, rx, PHY, purpose="ack")
    assert (tx.window, tx.sf, tx.freq_hz, tx.fallback) == ("rx2", 12, 869_525_000, None)


def test_missed_queued_downlink_waits_for_the_next_uplink(
    ing: tuple[Downlinks, list[DownlinkTx]],
) -> None:
    i, sent = ing
    s = _session()
    eui = s.dev_eui
    seq = i.store.queue_downlink(eui, 10, b"\xca\xfe")
    (row,) = i.store.pending_downlinks()
    i.enqueue(eui, seq, 10, b"\xca\xfe")
    assert i.answer(s, _heard(9), ack=False, empty_ok=False) is not None  # FCntDown 0
    _commit(i)  # the answer's batch: its "sent" mark and FCntDown commit before it is sent
    assert i.store.pending_downlinks() == []
    tx = lw_region.class_a_tx(lw_region.EU868, _rx(1.95), PHY, purpose="data", dev_eui=eui)
    i.send(replace(tx, queue_seq=seq, fallback=replace(tx.fallback, queue_seq=seq)))
    assert sent == [] and i.counters.get("downlink_missed", purpose="data") == 1
    _commit(i)  # "unsent again" rides in the next batch (the store thread writes it)
    assert [r["seq"] for r in i.store.pending_downlinks()] == [seq], "unsent again in the DB"
    assert [q["seq"] for q in i.queued[eui]] == [seq], "and first in its queue"
    assert i.queued[eui][0]["payload"] == b"\xca\xfe"
    assert i.counters.get("downlink_requeued") == 1
    # No route to the gateway at all: the same.
    i.store.mark_downlink_sent(seq, 4)
    i.queued.clear()
    i.send_downlink = lambda tx: False
    i.send(replace(tx, send_by=None, queue_seq=seq))
    assert [q["seq"] for q in i.queued[eui]] == [seq]
    assert row["seq"] == seq


def _commit(i: Downlinks) -> None:
    """Commit the open batch, as the ingest's run loop does on the store thread."""
    batch, _ = i.stage.take()
    i.store.commit_batch(batch)


def _session() -> DeviceSession:
    from tests.ingest.test_ingest_pipeline import ABP_EUI, ADDR, APP, NWK

    return DeviceSession(
        dev_eui=ABP_EUI, dev_addr=ADDR, nwk_s_key=NWK, app_s_key=APP, fcnt_up=3, fcnt_down=0
    )


def _heard(sf: int) -> FrameGroup:
    rx = RxInfo(GW, time.monotonic(), time.time(), 868_100_000, sf=sf, bw_khz=125, tmst=10_000)
    return FrameGroup(b"", (rx,), time.monotonic())


def test_queued_downlink_too_large_for_the_window_waits(
    ing: tuple[Downlinks, list[DownlinkTx]],
) -> None:
    """EU868 DR0 (SF12) carries a 59-byte MACPayload: a 60-byte FRMPayload cannot go in RX1 of
    an SF12 uplink; it waits, queued, for an uplink at a faster data rate."""
    i, _ = ing
    s = _session()
    big = bytes(60)
    seq = i.store.queue_downlink(s.dev_eui, 10, big)
    i.enqueue(s.dev_eui, seq, 10, big)
    assert i.answer(s, _heard(12), ack=False, empty_ok=False) is None, "nothing else to say"
    assert i.counters.get("downlink_deferred", reason="too_large") == 1
    tx = i.answer(s, _heard(12), ack=True, empty_ok=False)
    assert tx is not None and tx.purpose == "ack" and len(tx.phy_payload) == 12
    assert tx.phy_payload[5] & 0x10, "FPending: more is queued"
    assert [q["seq"] for q in i.queued[s.dev_eui]] == [seq]
    tx = i.answer(s, _heard(9), ack=False, empty_ok=False)  # DR3: 123-byte MACPayload
    assert tx is not None and tx.purpose == "data" and tx.queue_seq == seq
    assert len(tx.phy_payload) == 12 + 1 + 60 and s.dev_eui not in i.queued


def test_rx2_is_skipped_when_its_data_rate_cannot_carry_the_frame(
    ing: tuple[Downlinks, list[DownlinkTx]],
) -> None:
    i, sent = ing
    rx = _rx(0.95, sf=7)  # RX1 can no longer be reached; RX2 is SF12 (59-byte MACPayload)
    tx = lw_region.class_a_tx(lw_region.EU868, rx, bytes(12 + 1 + 100), purpose="data")
    i.send(tx)
    assert sent == []
    assert i.counters.get("downlink_missed", purpose="data", reason="too_large") == 1


def test_optional_downlinks_leave_half_the_budget_to_acks(
    ing: tuple[Downlinks, list[DownlinkTx]],
) -> None:
    """ADR requests and MAC answers stop (in both windows) at half a sub-band's hourly budget;
    an ACK still goes out in RX1 after them."""
    i, sent = ing
    one = airtime_ms(len(PHY), 9, 125, crc=False)
    half = int(18_000 // one)
    for _ in range(half + 5):
        i.send(lw_region.class_a_tx(lw_region.EU868, _rx(0.2), PHY, purpose="mac"))
    rx1 = [t for t in sent if t.window == "rx1"]
    assert len(rx1) == half, "RX1 (g1, 1 %) stops at half of its 36 s"
    assert all(t.window == "rx2" for t in sent[half:]), "then RX2 (g3, 10 %), still allowed"
    i.send(_ack(_rx(0.2)))
    assert sent[-1].window == "rx1" and sent[-1].purpose == "ack"
