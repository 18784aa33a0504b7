"""The `outbox` table: what waits for the broker's PUBACK (invariant 2), read by (priority, seq).
The drain (fetch_readings, delete_ranges, drop_unreadable) costs per batch, not per row.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Sequence
from typing import Any, NamedTuple

from gateway_agent.store import damaged, drops
from gateway_agent.store.sqlbatch import insert_rows

PRIO_ALERT, PRIO_EVENT, PRIO_READING = 0, 1, 2
OUTBOX_COLS = "priority, kind, dev_eui, topic, msg_id, body, created, created_mono"
OutboxTuple = tuple[int, str, str | None, str, str, str | bytes, float, float]


class OutboxRow(NamedTuple):
    """A tuple, made by the C tuple constructor: the drain reads ~50,000 rows/s (a frozen
    dataclass cost ~1 us a row in object.__setattr__)."""

    seq: int
    priority: int
    kind: str  # "up" | "alert" | "event"
    dev_eui: str | None
    topic: str  # suffix under {prefix}/{gateway_id}/
    msg_id: str
    body: str | bytes  # JSON text, or a CBOR item (wire.cbor_item) for format = "cbor"
    created: float


def max_seq(db: sqlite3.Connection) -> int:
    """The highest seq the table has held (files made with AUTOINCREMENT remember past rows)."""
    top = db.execute("SELECT max(seq) FROM outbox").fetchone()[0] or 0
    with contextlib.suppress(sqlite3.Error):  # files made with AUTOINCREMENT
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
        top = max(top, row[0] if row else 0)
    return int(top)


def insert(db: sqlite3.Connection, next_seq: int, rows: Sequence[OutboxTuple]) -> int:
    """Append rows; returns the next seq. Seq never goes back while this process lives, even
    when the table empties: the forwarder's cursor, its busy set and deferred deletes name rows
    by seq, and plain rowids restart at max(seq)+1. The first row sets the floor (`next_seq`);
    the rest follow it (max+1). Another process inserting meanwhile only moves max(seq) up."""
    if not rows:
        return next_seq
    db.execute(
        f"INSERT INTO outbox(seq, {OUTBOX_COLS}) VALUES"
        " (max(?, coalesce((SELECT max(seq) FROM outbox), 0) + 1), ?,?,?,?,?,?,?,?)",
        (next_seq, *rows[0]),
    )
    if len(rows) > 1:
        insert_rows(db, f"INSERT INTO outbox({OUTBOX_COLS})", rows[1:])
    return int(db.execute("SELECT last_insert_rowid()").fetchone()[0]) + 1


# -- reads -------------------------------------------------------------------------------


# Every read below leaves out rows with damaged text (store/damaged.py) and adds their seqs to
# `bad` (the first column is the seq): the caller sets them aside, counted.


def _read(
    db: sqlite3.Connection, sql: str, args: tuple[Any, ...], bad: list[int] | None
) -> list[Any]:
    rows, dmg = damaged.read(db, sql, args, None)  # plain tuples: no sqlite3.Row per row
    if dmg and bad is not None:
        bad.extend(r[0] for r in dmg)
    return rows


def fetch(
    db: sqlite3.Connection,
    limit: int,
    after: tuple[int, int] | None,
    bad: list[int] | None = None,
) -> list[OutboxRow]:
    """Oldest first within priority, after (priority, seq) `after`. Only tests call it today;
    the forwarder reads with `fetch_urgent` and `fetch_readings`."""
    cols = "SELECT seq, priority, kind, dev_eui, topic, msg_id, body, created FROM outbox"
    prio, seq = after if after is not None else (-1, -1)
    rows = []
    if prio < PRIO_READING:
        rows = _read(
            db,
            f"{cols} WHERE priority < {PRIO_READING} AND (priority, seq) > (?, ?)"
            " ORDER BY priority, seq LIMIT ?",
            (prio, seq, limit),
            bad,
        )
    if len(rows) < limit:
        rows += _read(
            db,
            f"{cols} WHERE priority = ? AND seq > ? ORDER BY seq LIMIT ?",
            (PRIO_READING, seq if prio >= PRIO_READING else -1, limit - len(rows)),
            bad,
        )
    return list(map(OutboxRow._make, rows))


def fetch_readings(
    db: sqlite3.Connection, limit: int, after_seq: int, bad: list[int] | None = None
) -> list[tuple[int, str, Any]]:
    """(seq, topic, body) of readings after `after_seq`, in seq order, as plain tuples."""
    return _read(
        db,
        "SELECT seq, topic, body FROM outbox WHERE priority = ? AND seq > ? ORDER BY seq LIMIT ?",
        (PRIO_READING, after_seq, limit),
        bad,
    )


def fetch_urgent(
    db: sqlite3.Connection, limit: int, bad: list[int] | None = None
) -> list[OutboxRow]:
    """Alerts and events only (they overtake readings, invariant 3). The bound is written
    out so that SQLite can prove the partial index outbox_urgent covers the query."""
    sql = (
        "SELECT seq, priority, kind, dev_eui, topic, msg_id, body, created FROM outbox"
        f" WHERE priority < {PRIO_READING} ORDER BY priority, seq LIMIT ?"
    )
    return [OutboxRow._make(r) for r in _read(db, sql, (limit,), bad)]


def depth(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])


def stats(db: sqlite3.Connection) -> dict[str, Any]:
    rows, dmg = damaged.read(db, "SELECT kind, count(*), min(created) FROM outbox GROUP BY kind")
    rows += [("damaged", r[1], r[2]) for r in dmg]
    by_kind = {r[0]: r[1] for r in rows}
    oldest = min((r[2] for r in rows), default=None)
    return {"depth": sum(by_kind.values()), "by_kind": by_kind, "oldest": oldest}


# -- deletes -----------------------------------------------------------------------------


def ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    """Acked seqs as (first, last) runs: a drained backlog is a few ranges, and a range
    DELETE walks the b-tree once instead of once per row (hil/bench/drain.py). Halves
    until a part has no gap: steps per run, not per seq (50,000 seqs/s on a drain)."""
    s = sorted(set(seqs))
    out: list[tuple[int, int]] = []

    def split(lo: int, hi: int) -> None:
        if s[hi - 1] - s[lo] == hi - 1 - lo:  # no gap
            if out and out[-1][1] + 1 == s[lo]:
                out[-1] = (out[-1][0], s[hi - 1])
            else:
                out.append((s[lo], s[hi - 1]))
            return
        mid = (lo + hi) // 2
        split(lo, mid)
        split(mid, hi)

    if s:
        split(0, len(s))
    return out


def delete_ranges(db: sqlite3.Connection, runs: Sequence[tuple[int, int]]) -> None:
    db.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", runs)


def delete_seqs(db: sqlite3.Connection, seqs: Sequence[int]) -> None:
    """Deferred acks riding in an ingest commit: a few rows, one statement each."""
    db.executemany("DELETE FROM outbox WHERE seq=?", [(s,) for s in seqs])


def drop_unreadable(db: sqlite3.Connection, seqs: Sequence[int]) -> None:
    """Rows the forwarder cannot read leave the outbox, counted by kind in the same
    transaction for the next `data_dropped` event."""
    by_kind = {PRIO_READING: 0, PRIO_EVENT: 0, PRIO_ALERT: 0}
    for a, b in ranges(seqs):
        for prio, n in db.execute(
            "SELECT priority, count(*) FROM outbox WHERE seq BETWEEN ? AND ? GROUP BY priority",
            (a, b),
        ):
            by_kind[prio] = by_kind.get(prio, 0) + int(n)
        db.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (a, b))
    for prio, kind in (
        (PRIO_READING, "unsent_readings"),
        (PRIO_EVENT, "unsent_events"),
        (PRIO_ALERT, "unsent_alerts"),
    ):
        if by_kind.get(prio):
            drops.add(db, kind, by_kind[prio], "unreadable")


def drop_oldest(db: sqlite3.Connection, n: int, priority: int | None = None) -> int:
    """Delete the `n` oldest rows (of one priority, or of any); returns how many went. The
    priority is written out so that SQLite can use the partial index outbox_urgent."""
    where = "" if priority is None else f"WHERE priority={int(priority)} "
    return int(
        db.execute(
            f"DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox {where}ORDER BY seq LIMIT ?)",
            (n,),
        ).rowcount
    )
