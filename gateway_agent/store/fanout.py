"""Shared rows of the output queue: a reading, alert or event is stored ONCE (output = '') for
every `[[outputs]]` entry, and each output keeps its own position per priority in
`output_cursor`. A row leaves when every output that takes its priority has passed it.

Positions only move over a delivered prefix (an output delivers in order; a row it has not
taken stops the walk), so a crash re-delivers at most what it had not yet persisted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from gateway_agent.store.queue import QueueRow

FANOUT = ""  # the `output` of shared rows
Cursors = dict[tuple[str, int], int]  # (output, priority) -> last seq passed


def load(db: sqlite3.Connection) -> Cursors:
    return {(o, p): s for o, p, s in db.execute("SELECT output, priority, seq FROM output_cursor")}


def top_seq(db: sqlite3.Connection) -> int:
    """The highest seq given that the file remembers: the last row's, or the furthest
    position (the rows behind it may all have left)."""
    row = db.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM output_queue), 0),"
        " coalesce((SELECT max(seq) FROM output_cursor), 0))"
    ).fetchone()
    return int(row[0])


def configure(db: sqlite3.Connection, wants: Mapping[str, Iterable[int]]) -> Cursors:
    """Each output's positions for the priorities it takes: a new one starts after every row
    stored so far (it takes what comes from now on); a priority no longer taken is let go."""
    have = load(db)
    top = top_seq(db)
    want = {(o, p) for o, ps in wants.items() for p in ps}
    for key in want - set(have):
        db.execute("INSERT INTO output_cursor VALUES (?,?,?)", (*key, top))
    for key in set(have) - want:
        if key[0] in wants:
            db.execute("DELETE FROM output_cursor WHERE output=? AND priority=?", key)
    return load(db)


def fetch(db: sqlite3.Connection, cursors: Cursors, output: str, limit: int) -> list[QueueRow]:
    """The next rows past `output`'s positions, alerts first, then events, then readings."""
    out: list[QueueRow] = []
    for (o, p), after in sorted(cursors.items(), key=lambda kv: kv[0][1]):
        if o != output or len(out) >= limit:
            continue
        rows = db.execute(
            "SELECT seq, priority, kind, dev_eui, msg_id, body, created FROM output_queue"
            " WHERE output=? AND priority=? AND seq>? ORDER BY seq LIMIT ?",
            (FANOUT, p, after, limit - len(out)),
        ).fetchall()
        out += [QueueRow._make(r) for r in rows]
    return out


def advance(
    db: sqlite3.Connection, cursors: Cursors, output: str, passed: set[int]
) -> dict[int, int]:
    """Move `output`'s positions over the rows in `passed` (delivered or refused) as far as they
    form an unbroken run from each position. Returns the priorities of the rows passed (seq ->
    priority), for counting refusals."""
    prios: dict[int, int] = {}
    for (o, p), after in list(cursors.items()):
        if o != output:
            continue
        pos = after
        while True:
            nxt = db.execute(
                "SELECT seq FROM output_queue WHERE output=? AND priority=? AND seq>?"
                " ORDER BY seq LIMIT 512",
                (FANOUT, p, pos),
            ).fetchall()
            moved = False
            for (s,) in nxt:
                if s not in passed:
                    break
                pos, prios[s], moved = s, p, True
            else:
                if moved and len(nxt) == 512:
                    continue
            break
        cursors[(o, p)] = pos
    return prios


def persist(db: sqlite3.Connection, cursors: Cursors, dirty: Iterable[tuple[str, int]]) -> int:
    """Write the moved positions and delete the shared rows every output has passed; returns
    how many rows left."""
    db.executemany(
        "UPDATE output_cursor SET seq=max(seq, ?) WHERE output=? AND priority=?",
        [(cursors[k], k[0], k[1]) for k in dirty if k in cursors],
    )
    gone = 0
    for p in {p for _, p in cursors}:
        floor = min(s for (_, q), s in cursors.items() if q == p)
        gone += db.execute(
            "DELETE FROM output_queue WHERE output=? AND priority=? AND seq<=?", (FANOUT, p, floor)
        ).rowcount
    return int(gone)


def stats(db: sqlite3.Connection, cursors: Cursors) -> dict[str, dict[str, Any]]:
    """Per output: what waits past its positions (depth, by kind, oldest)."""
    out: dict[str, dict[str, Any]] = {}
    for (o, p), after in cursors.items():
        s = out.setdefault(o, {"depth": 0, "by_kind": {}, "oldest": None})
        for kind, n, oldest in db.execute(
            "SELECT kind, count(*), min(created) FROM output_queue"
            " WHERE output=? AND priority=? AND seq>? GROUP BY kind",
            (FANOUT, p, after),
        ):
            s["depth"] += n
            s["by_kind"][kind] = s["by_kind"].get(kind, 0) + n
            if s["oldest"] is None or oldest < s["oldest"]:
                s["oldest"] = oldest
    return out


def waiting_for(cursors: Cursors, priority: int, seq: int) -> list[str]:
    """The outputs that have not passed a shared row (whose drop is theirs to count)."""
    return [o for (o, p), s in cursors.items() if p == priority and s < seq]


def forget(
    db: sqlite3.Connection, cursors: Cursors, outputs: Iterable[str]
) -> dict[str, dict[int, int]]:
    """Let go of outputs no longer configured; returns, per output and priority, the shared
    rows it had not passed (counted as dropped for it by the caller)."""
    out: dict[str, dict[int, int]] = {}
    for o in set(outputs):
        for (oo, p), after in list(cursors.items()):
            if oo != o:
                continue
            n = db.execute(
                "SELECT count(*) FROM output_queue WHERE output=? AND priority=? AND seq>?",
                (FANOUT, p, after),
            ).fetchone()[0]
            if n:
                out.setdefault(o, {})[p] = int(n)
            db.execute("DELETE FROM output_cursor WHERE output=? AND priority=?", (o, p))
            del cursors[(oo, p)]
    return out
