"""Store layout for SD wear: small pages, no sqlite_sequence, no readings id index; outbox seqs
never reused while anything in the process can still name them; space given back only on cap;
the default commit policy's bytes per day at 1 uplink/s."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.config.sections import StoreConfig
from gateway_agent.store import PAGE_SIZE, PRIO_READING, Batch, Store
from hil.broker import Mosquitto
from tests.store.test_store import outbox_row, reading_row

LEGACY_OUTBOX = """
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, priority INTEGER NOT NULL, kind TEXT NOT NULL,
    dev_eui TEXT, topic TEXT NOT NULL, msg_id TEXT NOT NULL, body TEXT NOT NULL,
    created REAL NOT NULL, created_mono REAL, attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_order ON outbox(priority, seq);
"""


def test_new_db_layout(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    assert PAGE_SIZE == 1024
    assert s.db.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert s.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    names = {r[0] for r in s.db.execute("SELECT name FROM sqlite_master")}
    assert "sqlite_sequence" not in names
    assert [r[1] for r in s.db.execute("PRAGMA index_list(readings)")] == ["readings_dev_time"]
    s.add_outbox([outbox_row(1)])
    assert "sqlite_sequence" not in {r[0] for r in s.db.execute("SELECT name FROM sqlite_master")}
    s.close()


def test_existing_file_keeps_its_page_size(tmp_path: Path) -> None:
    Store(tmp_path / "a.db", page_size=4096).close()
    s = Store(tmp_path / "a.db")
    assert s.db.execute("PRAGMA page_size").fetchone()[0] == 4096
    s.close()


def _seqs(s: Store) -> list[int]:
    return [r.seq for r in s.outbox_fetch(10_000)]


def test_seq_not_reused_after_the_table_empties(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.add_outbox([outbox_row(i) for i in range(3)])
    first = _seqs(s)
    s.outbox_delete(first)
    assert s.outbox_depth() == 0
    s.commit_batch(Batch(readings=[reading_row(9)], outbox=[outbox_row(9)]))
    assert _seqs(s)[0] > max(first), "a cursor at the old max would skip the new row"
    s.close()


def test_deferred_delete_never_hits_a_new_row(tmp_path: Path) -> None:
    """Acked rows wait for the next commit; if the cap removed them meanwhile, the new rows of
    that commit must not take their seqs (the deferred DELETE would drop unsent readings)."""
    s = Store(tmp_path / "a.db")
    s.add_outbox([outbox_row(i) for i in range(4)])
    acked = _seqs(s)
    s.outbox_delete(acked, defer_up_to=100)
    assert s.deferred_deletes() == 4 and s.outbox_depth() == 4
    s.db.execute("DELETE FROM outbox")  # e.g. shed by the cap
    s.add_outbox([outbox_row(10 + i) for i in range(4)])  # e.g. a drop report, between commits
    s.commit_batch(Batch(outbox=[outbox_row(20)]))  # carries the deferred deletes
    assert s.deferred_deletes() == 0
    assert [r.msg_id for r in s.outbox_fetch(100)] == ["id10", "id11", "id12", "id13", "id20"]
    s.close()


def test_legacy_autoincrement_file_continues_after_its_sequence(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db", page_size=4096)
    s.close()
    db = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    db.executescript("DROP TABLE outbox;" + LEGACY_OUTBOX)
    db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES ('outbox', 500)")
    db.close()
    s = Store(tmp_path / "a.db")
    s.add_outbox([outbox_row(1), outbox_row(2)])
    assert _seqs(s) == [501, 502]
    s.close()


def test_another_writer_meanwhile_moves_the_floor(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.add_outbox([outbox_row(1)])
    other = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    other.execute(
        "INSERT INTO outbox(seq, priority, kind, topic, msg_id, body, created) "
        "VALUES (40, 1, 'event', 'events', 'e', '{}', 0)"
    )
    other.close()
    s.add_outbox([outbox_row(2), outbox_row(3)])
    assert [r.msg_id for r in s.outbox_fetch(10)] == ["e", "id1", "id2", "id3"]
    assert min(r.seq for r in s.outbox_fetch(10) if r.msg_id in ("id2", "id3")) > 40
    s.close()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["commit", "ack", "ack_deferred", "wipe", "reopen"]), st.integers(1, 5)
        ),
        min_size=1,
        max_size=25,
    )
)
def test_seqs_only_grow_and_only_acked_rows_leave(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int]]
) -> None:
    path = tmp_path_factory.mktemp("seq") / "a.db"
    s = Store(path, "NORMAL")
    seen_max = 0
    alive: dict[str, int] = {}  # msg_id -> seq, rows that must still be there
    n = 0
    for op, k in ops:
        if op == "commit":
            rows = [outbox_row(n + i) for i in range(k)]
            n += k
            s.commit_batch(Batch(outbox=rows))
            new = [r for r in s.outbox_fetch(10_000) if r.msg_id not in alive]
            assert all(r.seq > seen_max for r in new), "a seq came back"
            for r in new:
                alive[r.msg_id] = r.seq
                seen_max = max(seen_max, r.seq)
        elif op in ("ack", "ack_deferred"):
            victims = sorted(alive, key=alive.__getitem__)[:k]
            s.outbox_delete([alive.pop(v) for v in victims], 100 if op == "ack_deferred" else 0)
        elif op == "wipe":  # the cap sheds everything, deferred deletes still pending
            s.db.execute("DELETE FROM outbox")
            alive.clear()
        else:
            s.outbox_delete([])  # flush, as the forwarder does before it lets go
            s.close()
            s = Store(path, "NORMAL")
            # A new process holds no seq in memory: only rows still there bound the next one.
            seen_max = max((r.seq for r in s.outbox_fetch(10_000)), default=0)
        if op != "ack_deferred":
            assert {r.msg_id: r.seq for r in s.outbox_fetch(10_000)} == alive
    s.close()


def _fill(s: Store, n: int, t: float) -> None:
    eui = "70b3d57ed0000001"
    body = '{"x":"' + "y" * 700 + '"}'
    for j in range(0, n, 100):
        rows = [
            (PRIO_READING, "up", eui, f"devices/{eui}/up", f"id{j + i}", body, t, 0.0)
            for i in range(100)
        ]
        readings = [
            (f"gw:{eui}:{j + i}", eui, j + i, 1, t, 1, b"\x01", "{}", "{}", None, 0.0, 0.0, 1)
            for i in range(100)
        ]
        s.commit_batch(Batch(readings=readings, outbox=rows))


def test_cap_shedding_gives_pages_back(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    _fill(s, 2000, time.time())
    s.checkpoint()
    before = s.size_bytes()
    dropped = s.enforce_cap(before // 2, 0, time.time())
    assert dropped["history"] > 0
    assert s.db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert s.size_bytes() <= before // 2, "the file shrank under the cap"
    assert s.quick_check() == "ok"
    s.close()


def test_retention_keeps_free_pages_for_reuse(tmp_path: Path) -> None:
    """Expired history leaves pages the next commits reuse: no checkpoint, no page moves."""
    s = Store(tmp_path / "a.db")
    _fill(s, 500, time.time() - 10 * 86400)
    s.checkpoint()
    dropped = s.enforce_cap(1 << 30, 86400, time.time())
    assert dropped["history"] == 500
    assert s.db.execute("PRAGMA freelist_count").fetchone()[0] > 0
    assert s._wal_bytes() > 0, "no forced checkpoint"
    s.close()


def test_periodic_flush_leaves_young_deletes_to_the_next_commit(tmp_path: Path) -> None:
    """At ~1 uplink/s every ack rides an ingest commit: the forwarder's periodic flush writes
    deletes on their own (an fsync of their own) only once they have waited `older_than_s`."""
    s = Store(tmp_path / "a.db")
    s.add_outbox([outbox_row(i) for i in range(3)])
    acked = _seqs(s)
    s.outbox_delete(acked, defer_up_to=32)
    s.outbox_delete([], 0, 60.0)  # the periodic flush: too young, nothing written
    assert s.deferred_deletes() == 3 and s.outbox_depth() == 3
    s.commit_batch(Batch(readings=[reading_row(5)], outbox=[outbox_row(5)]))
    assert s.deferred_deletes() == 0 and [r.msg_id for r in s.outbox_fetch(10)] == ["id5"]
    s.outbox_delete(_seqs(s), defer_up_to=32)
    time.sleep(0.05)
    s.outbox_delete([], 0, 0.02)  # no commit came: old enough, written on their own
    assert s.deferred_deletes() == 0 and s.outbox_depth() == 0
    s.close()


def test_readings_are_not_in_the_outbox_index(tmp_path: Path) -> None:
    """Migration 2: only alerts and events are indexed (partial index), readings go by seq;
    an existing file at version 1 loses its full index on open."""
    s = Store(tmp_path / "a.db")
    s.db.execute("DROP INDEX outbox_urgent")
    s.db.execute("CREATE INDEX outbox_order ON outbox(priority, seq)")
    s.db.execute("DELETE FROM schema_version WHERE version >= 2")
    s.db.commit()
    s.close()
    s = Store(tmp_path / "a.db")
    assert [r[1] for r in s.db.execute("PRAGMA index_list(outbox)")] == ["outbox_urgent"]
    plan = " ".join(
        str(r[3])
        for r in s.db.execute(
            f"EXPLAIN QUERY PLAN SELECT seq FROM outbox WHERE priority < {PRIO_READING}"
            " ORDER BY priority, seq LIMIT 5"
        )
    )
    assert "outbox_urgent" in plan, plan
    plan = " ".join(
        str(r[3])
        for r in s.db.execute(
            "EXPLAIN QUERY PLAN SELECT seq, topic, body FROM outbox WHERE priority = ? AND seq > ?"
            " ORDER BY seq LIMIT 5",
            (PRIO_READING, 0),
        )
    )
    assert "PRIMARY KEY" in plan and "TEMP B-TREE" not in plan, plan
    s.close()


def test_default_commit_policy_stays_in_the_wear_budget_at_1_per_s(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """#16 item 10: with the default policy each uplink commits on its own at 1 uplink/s; the
    real daemon's bytes written per reading x 86,400 stay <= 1.5 GB/day (measured ~0.94,
    docs/commit-policy.md; short form of `python -m hil.bench.wear --only new --rates 1`)."""
    from hil.bench.wear import measure

    d = StoreConfig()
    r = measure(tmp_path, broker.port, d.synchronous, d.commit_interval_ms, 1.0, 12.0)
    assert r["write_bytes"] > 0, "no /proc/<pid>/io write_bytes here"
    assert r["mb_per_day"] <= 1500, r
