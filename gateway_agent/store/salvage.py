"""Salvage from a damaged database: before a file that fails its check is moved aside, every row
still readable of the tables delivery and replay protection depend on (the unsent outbox, device
sessions and FCnts, DevNonces, queued downlinks, rule state, ...) is copied into a fresh file."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway_agent.store import damaged

# The history stays in the moved-aside file (readable with sqlite3): it can be as large as the
# cap, and a copy would need that much room again.
LEFT_BEHIND = ("readings", "schema_version")
CHUNK = 256


def tables(db: sqlite3.Connection) -> list[str]:
    rows = db.execute("SELECT name FROM sqlite_schema WHERE type='table'").fetchall()
    return [r[0] for r in rows if not r[0].startswith("sqlite_") and r[0] not in LEFT_BEHIND]


def columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]


def key_of(db: sqlite3.Connection, table: str) -> list[str]:
    """The columns rows are walked by: the rowid, or a WITHOUT ROWID table's primary key."""
    try:
        db.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
        return ["rowid"]
    except sqlite3.OperationalError:
        pk = sorted((r[5], r[1]) for r in db.execute(f'PRAGMA table_info("{table}")') if r[5])
        return [name for _, name in pk]


def walk(
    src: sqlite3.Connection, table: str, cols: list[str], skipped: dict[str, int]
) -> Iterator[tuple[Any, ...]]:
    """Rows of `table` in key order, CHUNK at a time; on a damaged page, row by row, and past
    a row that cannot be read by probing ever further (rowid tables). Each row set aside or
    damaged region stepped over counts one in `skipped[table]`."""
    key = key_of(src, table)
    k = ", ".join(f'"{c}"' if c != "rowid" else c for c in key)
    sel = ", ".join(f'"{c}"' for c in cols)
    last: tuple[Any, ...] | None = None
    chunk = CHUNK
    while True:
        where = "" if last is None else f"WHERE ({k}) > ({', '.join('?' * len(key))})"
        sql = f'SELECT {k}, {sel} FROM "{table}" {where} ORDER BY {k} LIMIT ?'  # noqa: S608
        try:
            rows = src.execute(sql, (*(last or ()), chunk)).fetchall()
        except sqlite3.DatabaseError:
            if chunk > 1:
                chunk = 1
                continue
            skipped[table] = skipped.get(table, 0) + 1
            nxt = _step_over(src, table, last) if key == ["rowid"] else None
            if nxt is None:
                return  # nothing readable after it (or no way to step over): done
            last, chunk = (nxt - 1,), CHUNK
            continue
        if not rows:
            return
        for r in rows:
            last = tuple(r[: len(key)])
            if damaged.is_damaged(r):
                skipped[table] = skipped.get(table, 0) + 1
                continue
            yield tuple(r[len(key) :])
        if chunk == 1:
            chunk = CHUNK


def _step_over(src: sqlite3.Connection, table: str, last: tuple[Any, ...] | None) -> int | None:
    """The first readable rowid after a damaged region (probing last+1, +2, +4, ...)."""
    base = int(last[0]) if last else 0
    step = 1
    while step < (1 << 62):
        try:
            row = src.execute(
                f'SELECT rowid FROM "{table}" WHERE rowid >= ? ORDER BY rowid LIMIT 1',  # noqa: S608
                (base + 1 + step,),
            ).fetchone()
        except sqlite3.DatabaseError:
            step *= 2
            continue
        return None if row is None else int(row[0])
    return None


def salvage(old: Path, fresh: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Copy every readable row of `old` (opened read-only) into `fresh` (a migrated, empty
    schema), table by table in one transaction; returns {"salvaged": {...}, "skipped": {...}}
    counts by table. A table the old file cannot even list is skipped whole."""
    src = sqlite3.connect(f"file:{old}?mode=ro", uri=True, timeout=5)
    src.text_factory = damaged.text
    saved: dict[str, int] = {}
    skipped: dict[str, int] = {}
    try:
        try:
            names = tables(src)
        except sqlite3.DatabaseError:
            return {"salvaged": saved, "skipped": {"schema": 1}}
        fresh.execute("BEGIN IMMEDIATE")
        for t in names:
            try:
                cols = [c for c in columns(fresh, t) if c in set(columns(src, t))]
            except sqlite3.DatabaseError:
                skipped[t] = skipped.get(t, 0) + 1
                continue
            if not cols:
                continue  # not in the fresh schema: unknown to this agent
            ins = (
                f'INSERT OR REPLACE INTO "{t}" ({", ".join(chr(34) + c + chr(34) for c in cols)})'
                f" VALUES ({', '.join('?' * len(cols))})"
            )
            n = 0
            for row in walk(src, t, cols, skipped):
                try:
                    fresh.execute(ins, row)
                    n += 1
                except sqlite3.IntegrityError:
                    skipped[t] = skipped.get(t, 0) + 1
            if n:
                saved[t] = n
        fresh.execute("COMMIT")
    finally:
        if fresh.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                fresh.execute("ROLLBACK")
        src.close()
    return {"salvaged": saved, "skipped": skipped}
