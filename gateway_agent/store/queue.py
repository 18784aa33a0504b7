"""The `output_queue` table: each `[[outputs]]` entry's (and the relay's) own durable lane.

A row is one message for one output; it leaves only when that output has it, so an output that
is down never holds back another. Read by (priority, seq): alerts first, then FCnt order.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from gateway_agent.store import drops

QUEUE_COLS = "output, priority, kind, dev_eui, msg_id, body, created"
# (output, priority, kind, dev_eui, msg_id, body, created): body is text (JSON) or bytes
QueueTuple = tuple[str, int, str, str | None, str, str | bytes, float]
_DROP_KIND = {0: "unsent_alerts", 1: "unsent_events", 2: "unsent_readings"}


class QueueRow(NamedTuple):
    seq: int
    priority: int
    kind: str  # "up" | "alert" | "event" | relay kinds ("relay_up", "relay_join")
    dev_eui: str | None
    msg_id: str
    body: str | bytes
    created: float  # wall clock when staged (a reading's reception time)


_CHUNK = 100  # rows per INSERT statement: 800 parameters, under any SQLite's limit of 999
_INSERT = f"INSERT INTO output_queue(seq, {QUEUE_COLS}) VALUES "


def _insert_sql(n: int) -> str:
    return _INSERT + ",".join(("(?,?,?,?,?,?,?,?)",) * n)


_INSERT_CHUNK = _insert_sql(_CHUNK)


def insert(db: sqlite3.Connection, rows: Sequence[QueueTuple], floor: int = 0) -> int:
    """Append rows with seqs above every row present and at least `floor` (the caller keeps
    it above every output's position, store/fanout.py, so a seq given after the table emptied
    can never sit behind a position); returns the next floor. Multi-row VALUES: one statement
    step per 100 rows costs the store thread ~30 % less than executemany's step per row."""
    if not rows:
        return floor
    top = db.execute("SELECT max(seq) FROM output_queue").fetchone()[0] or 0
    seq = max(floor, top + 1)
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i : i + _CHUNK]
        sql = _INSERT_CHUNK if len(chunk) == _CHUNK else _insert_sql(len(chunk))
        params: list[Any] = []
        for r in chunk:
            params.append(seq)
            params.extend(r)
            seq += 1
        db.execute(sql, params)
    return seq


def fetch(
    db: sqlite3.Connection, output: str, limit: int, skip: Iterable[int] = ()
) -> list[QueueRow]:
    """The first `limit` rows of `output` by (priority, seq), leaving out the seqs in `skip`
    (in flight and not yet deleted)."""
    skip = set(skip)
    rows = db.execute(
        "SELECT seq, priority, kind, dev_eui, msg_id, body, created FROM output_queue"
        " WHERE output=? ORDER BY priority, seq LIMIT ?",
        (output, limit + len(skip)),
    ).fetchall()
    out = [QueueRow._make(r) for r in rows if r[0] not in skip]
    return out[:limit]


def delete(db: sqlite3.Connection, output: str, seqs: Sequence[int]) -> int:
    return int(
        db.executemany(
            "DELETE FROM output_queue WHERE seq=? AND output=?", [(s, output) for s in seqs]
        ).rowcount
    )


def stats(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Per output: depth, by kind, oldest `created`."""
    out: dict[str, dict[str, Any]] = {}
    for output, kind, n, oldest in db.execute(
        "SELECT output, kind, count(*), min(created) FROM output_queue GROUP BY output, kind"
    ):
        s = out.setdefault(output, {"depth": 0, "by_kind": {}, "oldest": None})
        s["depth"] += n
        s["by_kind"][kind] = n
        if s["oldest"] is None or oldest < s["oldest"]:
            s["oldest"] = oldest
    return out


def outputs_present(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT DISTINCT output FROM output_queue")]


def count_drops(db: sqlite3.Connection, counts: dict[str, dict[str, int]], reason: str) -> None:
    """Add per-output drop counts to `meta.output_drops` (shown by `outbox status`) and to the
    agent-wide counts of the next `data_dropped` event, in the caller's transaction."""
    _per_output(db, counts)
    total: dict[str, int] = {}
    for by_kind in counts.values():
        for kind, n in by_kind.items():
            total[kind] = total.get(kind, 0) + n
    for kind, n in total.items():
        drops.add(db, kind, n, reason)


def _per_output(db: sqlite3.Connection, counts: dict[str, dict[str, int]]) -> None:
    """Add to `meta.output_drops`, the per-output counts `outbox status` shows."""
    row = db.execute("SELECT value FROM meta WHERE key='output_drops'").fetchone()
    data: dict[str, dict[str, int]] = json.loads(row[0]) if row else {}
    for output, by_kind in counts.items():
        d = data.setdefault(output, {})
        for kind, n in by_kind.items():
            d[kind] = int(d.get(kind, 0)) + n
    db.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('output_drops', ?)", (json.dumps(data),)
    )


def dropped(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    row = db.execute("SELECT value FROM meta WHERE key='output_drops'").fetchone()
    return dict(json.loads(row[0])) if row else {}


def tally(rows: Iterable[tuple[str, int]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for output, prio in rows:
        k = _DROP_KIND.get(prio, "unsent_readings")
        counts.setdefault(output, {})[k] = counts.setdefault(output, {}).get(k, 0) + 1
    return counts


def drop_seqs(db: sqlite3.Connection, output: str, seqs: Sequence[int], reason: str) -> int:
    """Rows an output will never take (refused for good, or too old to matter: a join-request
    past its window) leave, counted for that output."""
    rows = []
    for s in seqs:
        r = db.execute(
            "SELECT output, priority FROM output_queue WHERE seq=? AND output=?", (s, output)
        ).fetchone()
        if r:
            rows.append((r[0], r[1]))
    delete(db, output, seqs)
    if rows:
        count_drops(db, tally(rows), reason)
    return len(rows)


def drop_oldest(db: sqlite3.Connection, n: int, priority: int | None = None) -> int:
    """For the disk cap (store/capacity.py): the `n` oldest rows of the queue, of one priority
    or any; per-output counts go to `meta.output_drops` (a shared row counts for each output
    whose written position had not passed it). The agent-wide count is the caller's (capacity
    counts each step's rows once, under its own kind)."""
    from gateway_agent.store import fanout  # fanout reads rows as QueueRow from here

    where = "" if priority is None else f"WHERE priority={int(priority)} "
    victims = db.execute(
        f"SELECT seq, output, priority FROM output_queue {where}ORDER BY seq LIMIT ?",  # noqa: S608
        (n,),
    ).fetchall()
    if not victims:
        return 0
    db.executemany("DELETE FROM output_queue WHERE seq=?", [(v[0],) for v in victims])
    cursors = fanout.load(db)
    owners: list[tuple[str, int]] = []
    for seq, output, prio in victims:
        if output == fanout.FANOUT:
            owners += [(o, prio) for o in fanout.waiting_for(cursors, prio, seq)]
        else:
            owners.append((output, prio))
    _per_output(db, tally(owners))
    return len(victims)


def forget(db: sqlite3.Connection, outputs: Sequence[str]) -> dict[str, int]:
    """Rows of outputs no longer configured leave, counted (reason `output_removed`)."""
    out: dict[str, int] = {}
    for name in outputs:
        rows = db.execute(
            "SELECT output, priority FROM output_queue WHERE output=?", (name,)
        ).fetchall()
        if rows:
            db.execute("DELETE FROM output_queue WHERE output=?", (name,))
            count_drops(db, tally((r[0], r[1]) for r in rows), "output_removed")
            out[name] = len(rows)
    return out
