"""The outbox calls the drain leans on: cursor reads and range deletes of acked rows."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING, Store


def _row(prio: int, i: int) -> tuple[int, str, str, str, str, str, float, float]:
    kind = {PRIO_ALERT: "alert", PRIO_EVENT: "event", PRIO_READING: "up"}[prio]
    return (prio, kind, "70b3d57ed0000001", f"x/{kind}", f"id{i}", "{}", 0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([PRIO_ALERT, PRIO_EVENT, PRIO_READING]), min_size=1, max_size=60),
    st.data(),
)
def test_range_deletes_remove_exactly_the_acked_rows(prios: list[int], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        s = Store(Path(d) / "a.db", "NORMAL")
        s.add_outbox([_row(p, i) for i, p in enumerate(prios)])
        seqs = [r.seq for r in s.outbox_fetch(1000)]
        acked = data.draw(st.lists(st.sampled_from(seqs), unique=True))
        s.outbox_delete(acked)
        assert sorted(r.seq for r in s.outbox_fetch(1000)) == sorted(set(seqs) - set(acked))
        s.close()


def test_reading_cursor_reads_on_in_seq_order_and_skips_urgent_rows() -> None:
    with tempfile.TemporaryDirectory() as d:
        s = Store(Path(d) / "a.db", "NORMAL")
        s.add_outbox([_row(PRIO_READING if i % 3 else PRIO_ALERT, i) for i in range(30)])
        got, cursor = [], (PRIO_READING, 0)
        while rows := s.outbox_fetch(4, cursor):
            got += [r.msg_id for r in rows]
            assert all(r.priority == PRIO_READING for r in rows)
            cursor = (PRIO_READING, rows[-1].seq)
        assert got == [f"id{i}" for i in range(30) if i % 3]
        # Any other cursor keeps the (priority, seq) order across priorities.
        first_alert = s.outbox_fetch(1)[0]
        after = [r.msg_id for r in s.outbox_fetch(100, (PRIO_ALERT, first_alert.seq))]
        assert after[:9] == [f"id{i}" for i in range(3, 30, 3)]
        assert after[9:] == got
        s.close()


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0, 120), max_size=80))
def test_acked_seqs_become_their_runs(seqs: list[int]) -> None:
    """The runs cover exactly the acked seqs, in order, with a gap between any two."""
    runs = Store._outbox_ranges(seqs)
    assert [s for a, b in runs for s in range(a, b + 1)] == sorted(set(seqs))
    assert all(b1 + 1 < a2 for (_, b1), (a2, _) in zip(runs, runs[1:], strict=False))


def test_reading_cursor_reads_seq_topic_body_of_readings_only() -> None:
    with tempfile.TemporaryDirectory() as d:
        s = Store(Path(d) / "o.db", "NORMAL")
        s.add_outbox([_row(p, i) for i, p in enumerate([PRIO_READING, PRIO_ALERT] * 5)])
        got = s.outbox_fetch_readings(3, 0)
        assert [t for _, t, _ in got] == ["x/up"] * 3
        rest = s.outbox_fetch_readings(10, got[-1][0])
        assert len(rest) == 2 and rest[0][0] > got[-1][0]
        s.close()
