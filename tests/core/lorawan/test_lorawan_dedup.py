"""Dedup window: folding receptions, best-first order, late copies, bounded memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.lorawan.dedup import DedupWindow
from gateway_agent.lorawan.radio import RadioFrame, RxInfo

W1 = bytes.fromhex("405a3c0b26802a00016a485fefd2eefc1bd02b37")
W3 = bytes.fromhex("405a3c0b26002c000045e97b37f25b6d35")


def rx(gw: str, snr: float | None, rssi: float | None, t: float = 0.0) -> RxInfo:
    return RxInfo(gw, t, t, 868_100_000, sf=7, bw_khz=125, snr_db=snr, rssi_dbm=rssi, tmst=1)


def test_copies_fold_into_one_group_sorted_best_first() -> None:
    d = DedupWindow(0.2)
    assert d.add(RadioFrame(W1, rx("a", 2.5, -84)), 10.0)
    assert not d.add(RadioFrame(W1, rx("b", 9.2, -71)), 10.05)
    assert not d.add(RadioFrame(W1, rx("c", 9.2, -60)), 10.1)
    assert not d.add(RadioFrame(W1, rx("d", None, None)), 10.1)
    assert d.add(RadioFrame(W3, rx("a", 1.0, -90)), 10.1)  # another transmission
    assert d.duplicates == 3
    assert d.next_deadline() == 10.2
    assert d.pop_due(10.19) == []
    (g,) = d.pop_due(10.2)
    assert g.phy_payload == W1 and g.first_seen == 10.0
    assert [r.gateway_id for r in g.rx] == ["c", "b", "a", "d"]
    assert d.next_deadline() == 10.1 + 0.2
    (g3,) = d.pop_due(11.0)
    assert g3.phy_payload == W3
    assert d.next_deadline() is None and len(d) == 0


def test_late_copy_is_a_duplicate_then_forgotten() -> None:
    d = DedupWindow(0.2, late_memory_s=2.0)
    d.add(RadioFrame(W1, rx("a", 5, -80)), 0.0)
    assert len(d.pop_due(0.3)) == 1
    assert not d.add(RadioFrame(W1, rx("b", 5, -80)), 1.0)
    assert d.last_add_late and d.late_duplicates == 1
    assert d.pop_due(5.0) == []
    # After the memory expires the same bytes are a new transmission (e.g. a confirmed retry).
    assert d.add(RadioFrame(W1, rx("a", 5, -80)), 5.0)
    assert not d.last_add_late


def test_zero_window_releases_immediately() -> None:
    d = DedupWindow(0.0)
    d.add(RadioFrame(W1, rx("a", 5, -80)), 3.0)
    assert d.next_deadline() == 3.0
    assert [g.phy_payload for g in d.pop_due(3.0)] == [W1]


def test_memory_is_bounded() -> None:
    d = DedupWindow(10.0, max_groups=4)
    for i in range(10):
        d.add(RadioFrame(bytes([0x40, i]) + W1[2:], rx("a", 1, -1)), float(i) * 0.001)
    assert d.evicted_early == 6
    assert len(d._open) == 4
    out = d.pop_due(0.01)  # the evicted ones are ready at once, in arrival order
    assert [g.phy_payload[1] for g in out] == list(range(6))
    assert len(d._recent) <= 4
    assert [g.phy_payload[1] for g in d.pop_due(100.0)] == [6, 7, 8, 9]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(-20, 15, allow_nan=False)),
            st.one_of(st.none(), st.floats(-140, -20, allow_nan=False)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_n_copies_fold_into_one_group_with_n_records(
    signals: list[tuple[float | None, float | None]],
) -> None:
    d = DedupWindow(0.2)
    opened = [
        d.add(RadioFrame(W1, rx(f"gw{i}", snr, rssi)), 1.0 + i * 0.001)
        for i, (snr, rssi) in enumerate(signals)
    ]
    assert opened == [True] + [False] * (len(signals) - 1)
    (g,) = d.pop_due(2.0)
    assert len(g.rx) == len(signals)
    keys = [
        (r.snr_db if r.snr_db is not None else -1e9, r.rssi_dbm if r.rssi_dbm is not None else -1e9)
        for r in g.rx
    ]
    assert keys == sorted(keys, reverse=True)


# -- early release (issue #16: a frame held in the window is a frame a power cut loses) --------


def frame(phy: bytes, gw: str) -> RadioFrame:
    return RadioFrame(phy, rx(gw, 5.0, -80.0))


def test_early_release_single_receiver_is_due_at_once() -> None:
    w = DedupWindow(0.2, early_release=True)
    assert w.add(frame(b"first", "gw1"), 9.0)  # a receiver's first frame waits out the window
    assert w.pop_due(9.1) == [] and len(w.pop_due(9.2)) == 1
    assert w.add(frame(b"a", "gw1"), 10.0)
    assert w.next_deadline() == 10.0
    assert [g.phy_payload for g in w.pop_due(10.0)] == [b"a"]
    seeded = DedupWindow(0.2, early_release=True)
    seeded.know(["gw1"], 0.0)  # known from before a restart: early from the first frame
    seeded.add(frame(b"a", "gw1"), 1.0)
    assert len(seeded.pop_due(1.0)) == 1
    # Without early release the same frame waits out the window.
    w2 = DedupWindow(0.2)
    w2.add(frame(b"a", "gw1"), 10.0)
    assert w2.pop_due(10.0) == [] and len(w2.pop_due(10.2)) == 1


def test_early_release_waits_for_every_active_receiver() -> None:
    w = DedupWindow(0.2, early_release=True)
    w.add(frame(b"warm", "gw1"), 0.0)
    w.add(frame(b"warm", "gw2"), 0.01)
    w.pop_due(1.0)
    new = DedupWindow(0.2, early_release=True)  # three new gateways at once: grouped fully
    for i, g in enumerate(("n0", "n1", "n2")):
        new.add(frame(b"z", g), 2.0 + i * 0.015)
        assert new.pop_due(2.0 + i * 0.015) == []
    (z,) = new.pop_due(2.2)
    assert len(z.rx) == 3
    w.add(frame(b"x", "gw1"), 5.0)
    assert w.pop_due(5.05) == []  # gw2 is active and has not reported it yet
    w.add(frame(b"x", "gw2"), 5.06)
    (g,) = w.pop_due(5.06)  # both reported: released before the window closes
    assert {r.gateway_id for r in g.rx} == {"gw1", "gw2"}
    w.add(frame(b"y", "gw1"), 6.0)  # gw2 does not hear this one: the window decides
    assert w.pop_due(6.1) == [] and len(w.pop_due(6.2)) == 1


def test_early_release_forgets_a_silent_receiver_and_keeps_arrival_order() -> None:
    w = DedupWindow(0.2, early_release=True, receiver_memory_s=60.0)
    w.know(["gw1"], 0.0)
    w.add(frame(b"warm", "gw2"), 0.0)
    assert len(w.pop_due(0.2)) == 1
    w.add(frame(b"a", "gw1"), 30.0)  # gw2 still counts: a waits for it or the window
    w.add(frame(b"b", "gw1"), 30.01)
    assert w.pop_due(30.05) == []
    assert [g.phy_payload for g in w.pop_due(30.2)] == [b"a"]  # b waits behind a
    assert [g.phy_payload for g in w.pop_due(30.25)] == [b"b"]
    w.add(frame(b"c", "gw1"), 100.0)  # gw2 silent for 100 s: no longer waited for
    assert [g.phy_payload for g in w.pop_due(100.0)] == [b"c"]
