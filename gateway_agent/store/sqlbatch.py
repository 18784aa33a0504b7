"""Many rows per SQLite statement: one step, so one GIL hand-off, per chunk instead of per row.

`executemany` releases the GIL around every row's step and must win it back each time; while the
event loop keeps the GIL busy, each of those hand-offs waits, and a commit of a few thousand rows
took ~0.5 s of wall time for ~0.1 s of work (measured with hil.bench.ingest).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import chain
from typing import Any

# Chunk sizes, largest first. A handful of fixed sizes keeps the prepared statements few: the
# sqlite3 module caches up to 128 by SQL text, and a 200-row statement is hundreds of kB, so one
# per remainder length (1..199) cost ~10 MB of RSS (python -m hil.bench.memory).
_SIZES = (200, 40, 8, 1)


def _chunks(n: int) -> list[tuple[int, int]]:
    """(start, length) pieces of n rows using only _SIZES."""
    out, start = [], 0
    for size in _SIZES:
        while n - start >= size:
            out.append((start, size))
            start += size
    return out


def insert_rows(db: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]]) -> None:
    """`head` is `INSERT [OR ...] INTO t(cols)`; rows go in order (rowids as executemany's)."""
    if not rows:
        return
    ncols = len(rows[0])
    group = "(" + ",".join("?" * ncols) + ")"
    for start, size in _chunks(len(rows)):
        db.execute(
            f"{head} VALUES {','.join([group] * size)}",
            tuple(chain.from_iterable(rows[start : start + size])),
        )


def update_rows(
    db: sqlite3.Connection,
    table: str,
    key: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """`UPDATE table SET columns... WHERE key = row[0]` for each row (key first, distinct keys)."""
    if not rows:
        return
    group = "(" + ",".join("?" * (len(columns) + 1)) + ")"
    sets = ", ".join(f"{c}=v.column{i + 2}" for i, c in enumerate(columns))
    for start, size in _chunks(len(rows)):
        db.execute(
            f"UPDATE {table} SET {sets} FROM (VALUES {','.join([group] * size)}) AS v"
            f" WHERE {table}.{key} = v.column1",
            tuple(chain.from_iterable(rows[start : start + size])),
        )
