"""The outputs' lanes (store/queue.py): one durable lane per output, read alerts first then in
insertion (FCnt) order, each output deleting only its own rows; drops counted per output; the
disk cap sheds the lanes' readings before any alert."""

from __future__ import annotations

import time
from pathlib import Path

from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING, Batch, Store


def _row(output: str, i: int, prio: int = PRIO_READING, kind: str = "up") -> tuple:
    return (output, prio, kind, "0102030405060708", f"id-{i}", f'{{"n":{i}}}', 1000.0 + i)


def test_each_output_reads_and_deletes_only_its_own_rows(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    b = Batch()
    for i in range(5):
        b.queued += [_row("influx", i), _row("hook", i)]
    b.queued.append(_row("influx", 99, PRIO_ALERT, "alert"))
    b.queued.append(_row("influx", 98, PRIO_EVENT, "event"))
    s.commit_batch(b)
    rows = s.queue_fetch("influx", 10)
    assert [r.msg_id for r in rows] == ["id-99", "id-98"] + [f"id-{i}" for i in range(5)]
    assert [r.kind for r in rows[:2]] == ["alert", "event"]
    s.queue_delete("influx", [r.seq for r in rows[:4]])
    # the other output's rows are untouched by influx's deletes
    assert [r.msg_id for r in s.queue_fetch("hook", 10)] == [f"id-{i}" for i in range(5)]
    assert [r.msg_id for r in s.queue_fetch("influx", 10)] == ["id-2", "id-3", "id-4"]
    # deleting another output's seqs through this output's name does nothing
    s.queue_delete("influx", [r.seq for r in s.queue_fetch("hook", 10)])
    assert len(s.queue_fetch("hook", 10)) == 5
    st = s.queue_stats()
    assert st["influx"]["depth"] == 3 and st["hook"]["depth"] == 5
    assert st["hook"]["oldest"] == 1000.0
    # skip: rows in flight are left out, the next ones come instead
    first = s.queue_fetch("hook", 2)
    nxt = s.queue_fetch("hook", 2, skip=[r.seq for r in first])
    assert [r.msg_id for r in nxt] == ["id-2", "id-3"]
    s.close()


def test_drops_are_counted_per_output_and_for_data_dropped(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.queue_add([_row("hook", i) for i in range(3)] + [_row("relay", 7, kind="relay_join")])
    seqs = [r.seq for r in s.queue_fetch("hook", 10)]
    assert s.queue_drop("hook", seqs[:2], "refused") == 2
    assert s.queue_drop("hook", [123456], "refused") == 0  # not there: nothing counted
    st = s.queue_stats()
    assert st["hook"]["dropped"] == {"unsent_readings": 2}
    assert s.drops_unreported
    # the agent-wide counts for the next data_dropped event include them
    made = s.report_drops(
        lambda d: (PRIO_EVENT, "event", None, "events", "x", str(d), time.time(), 0.0)
    )
    assert made["unsent_readings"] == 2 and "refused" in made["reasons"]
    # an output no longer configured: its lane goes, counted
    gone = s.queue_forget(keep=["hook"])
    assert gone == {"relay": 1}
    assert "relay" not in {k for k, v in s.queue_stats().items() if v["depth"]}
    assert s.queue_stats()["relay"]["dropped"] == {"unsent_readings": 1}
    s.close()


def test_survives_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.queue_add([_row("hook", i) for i in range(3)])
    s.close()
    s = Store(tmp_path / "a.db")
    assert [r.msg_id for r in s.queue_fetch("hook", 10)] == ["id-0", "id-1", "id-2"]
    s.queue_add([_row("hook", 3)])
    assert [r.msg_id for r in s.queue_fetch("hook", 10)][-1] == "id-3"
    s.close()


def test_cap_sheds_lane_readings_before_alerts(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db", max_bytes=4 << 20)
    body = "x" * 400
    alerts = [("hook", PRIO_ALERT, "alert", "01", f"a-{i}", body, 1.0) for i in range(20)]
    s.queue_add(alerts)
    for chunk in range(30):
        s.queue_add(
            [
                ("hook", PRIO_READING, "up", "01", f"r-{chunk}-{i}", body, 2.0 + chunk)
                for i in range(500)
            ]
        )
    before = s.queue_stats()["hook"]["by_kind"]["up"]
    dropped = s.enforce_cap(1 << 20, 0.0, time.time())
    st = s.queue_stats()["hook"]
    assert dropped["unsent_readings"] > 0 and dropped["unsent_alerts"] == 0
    assert st["by_kind"]["alert"] == 20, "alerts go last"
    assert st["by_kind"]["up"] < before
    assert st["dropped"]["unsent_readings"] == before - st["by_kind"]["up"]
    # the oldest readings went first: what is left is the newest
    left = [r.msg_id for r in s.queue_fetch("hook", 100_000) if r.kind == "up"]
    assert left[-1] == "r-29-499"
    s.close()


# -- rows every [[outputs]] entry shares (store/fanout.py) ----------------------------------


def _shared(i: int, prio: int = PRIO_READING, kind: str = "up") -> tuple:
    return ("", prio, kind, "0102030405060708", f"s-{i}", f'{{"n":{i}}}', 1000.0 + i)


def test_shared_rows_are_stored_once_and_each_output_keeps_its_place(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.queue_add([_shared(0)])  # before the outputs existed: theirs only from now on
    s.queue_configure({"influx": {0, 2}, "hook": {0, 1, 2}, "cases": {0}})
    b = Batch()
    b.queued = [_shared(i) for i in range(1, 6)] + [_shared(9, PRIO_ALERT, "alert")]
    b.queued.append(_shared(8, PRIO_EVENT, "event"))
    s.commit_batch(b)
    assert s.db.execute("SELECT count(*) FROM output_queue").fetchone()[0] == 8, "stored once"
    ids = lambda rows: [r.msg_id for r in rows]  # noqa: E731
    assert ids(s.queue_fetch("influx", 10)) == ["s-9"] + [f"s-{i}" for i in range(1, 6)]
    assert ids(s.queue_fetch("hook", 10)) == ["s-9", "s-8"] + [f"s-{i}" for i in range(1, 6)]
    assert ids(s.queue_fetch("cases", 10)) == ["s-9"], "kinds: alerts only"
    # influx takes the alert and two readings; hook nothing yet
    rows = s.queue_fetch("influx", 3)
    s.queue_settle("influx", [r.seq for r in rows])
    assert ids(s.queue_fetch("influx", 10)) == ["s-3", "s-4", "s-5"]
    assert len(s.queue_fetch("hook", 10)) == 7, "another output's place is its own"
    st = s.queue_stats()
    assert (st["influx"]["depth"], st["hook"]["depth"], st["cases"]["depth"]) == (3, 7, 1)
    # a gap stops the walk: s-4 delivered without s-3 does not move the place past s-3
    s4 = next(r for r in s.queue_fetch("influx", 10) if r.msg_id == "s-4")
    s.queue_settle("influx", [s4.seq])
    assert ids(s.queue_fetch("influx", 10))[0] == "s-3"
    # a refused row is passed, counted for that output only
    s3 = s.queue_fetch("influx", 1)[0]
    assert s.queue_settle("influx", [], [s3.seq], "http 400: bad") == 1
    assert ids(s.queue_fetch("influx", 10)) == ["s-4", "s-5"], "s-4 (done before) now passed too"
    assert s.queue_stats()["influx"]["dropped"] == {"unsent_readings": 1}
    assert "dropped" not in s.queue_stats()["hook"]
    s.close()


def test_positions_reach_the_file_and_passed_rows_leave(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.queue_configure({"a": {2}, "b": {2}})
    s.queue_add([_shared(i) for i in range(10)])
    rows = s.queue_fetch("a", 10)
    s.queue_settle("a", [r.seq for r in rows[:6]])
    s.queue_settle("b", [r.seq for r in rows[:4]])
    s.queue_flush()
    left = [r[0] for r in s.db.execute("SELECT msg_id FROM output_queue ORDER BY seq")]
    assert left == [f"s-{i}" for i in range(4, 10)], "a row leaves once every output passed it"
    # the positions are in the file: a restart resumes there (nothing re-sent, nothing skipped)
    s.queue_settle("a", [r.seq for r in rows[6:8]])  # moved in memory only...
    s.close()
    s = Store(tmp_path / "a.db")
    s.queue_configure({"a": {2}, "b": {2}})
    assert [r.msg_id for r in s.queue_fetch("b", 10)][0] == "s-4"
    # ...a crash before the next write re-sends those (at least once), never skips
    assert [r.msg_id for r in s.queue_fetch("a", 10)][0] in ("s-6", "s-8")
    # an ingest commit carries moved positions with it
    rows = s.queue_fetch("a", 10)
    s.queue_settle("a", [r.seq for r in rows])
    s._fan_written = time.monotonic()  # not due on its own: only the commit writes them
    s.commit_batch(Batch(queued=[_shared(10)]))
    s.close()
    s = Store(tmp_path / "a.db")
    s.queue_configure({"a": {2}, "b": {2}})
    assert [r.msg_id for r in s.queue_fetch("a", 10)] == ["s-10"]
    # seqs are never given twice, even once the table empties
    s.queue_settle("b", [r.seq for r in s.queue_fetch("b", 100)])
    s.queue_settle("a", [r.seq for r in s.queue_fetch("a", 100)])
    s.queue_flush()
    assert s.db.execute("SELECT count(*) FROM output_queue").fetchone()[0] == 0
    s.queue_add([_shared(11)])
    assert [r.msg_id for r in s.queue_fetch("a", 10)] == ["s-11"]
    s.close()


def test_removed_output_lets_go_and_counts_what_it_never_had(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.queue_configure({"a": {2}, "b": {2}})
    s.queue_add([_shared(i) for i in range(5)])
    s.queue_settle("a", [r.seq for r in s.queue_fetch("a", 5)])
    s.close()
    s = Store(tmp_path / "a.db")
    assert s.queue_forget(keep=["a"]) == {"b": 5}
    s.queue_configure({"a": {2}})
    assert s.queue_stats()["b"]["dropped"] == {"unsent_readings": 5}
    assert s.db.execute("SELECT count(*) FROM output_queue").fetchone()[0] == 0, "pruned"
    s.close()


def test_cap_counts_a_shared_row_for_each_output_that_had_not_passed_it(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db", max_bytes=4 << 20)
    s.queue_configure({"a": {0, 2}, "b": {0, 2}})
    body = "x" * 400
    s.queue_add([("", PRIO_ALERT, "alert", "01", f"a-{i}", body, 1.0) for i in range(20)])
    for chunk in range(30):
        s.queue_add(
            [("", PRIO_READING, "up", "01", f"r-{chunk}-{i}", body, 2.0 + chunk) for i in range(500)]
        )
    first = s.queue_fetch("a", 520)
    s.queue_settle("a", [r.seq for r in first])  # a has the alerts and 500 readings
    s.queue_flush()
    dropped = s.enforce_cap(1 << 20, 0.0, time.time())
    st = s.queue_stats()
    assert dropped["unsent_alerts"] == 0 and st["b"]["by_kind"]["alert"] == 20
    lost = dropped["unsent_readings"]
    assert lost > 500
    assert st["b"]["dropped"]["unsent_readings"] == lost
    assert st["a"]["dropped"]["unsent_readings"] == lost - 500, "a had 500 of them already"
    s.close()
