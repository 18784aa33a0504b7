"""Damaged rows: a text value that is not UTF-8 (a bad byte on the card) sets its row aside
instead of failing the whole read. Reads run at full speed; only a read that fails to decode
is run again, decoding in Python row by row."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any


class Damaged:
    """A TEXT value whose bytes are not UTF-8 (its raw bytes in `raw`)."""

    __slots__ = ("raw",)

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"Damaged({self.raw[:32]!r})"


def text(raw: bytes) -> str | Damaged:
    """A `text_factory`: the text, or `Damaged` for bytes that are not UTF-8."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return Damaged(raw)


def is_damaged(row: Sequence[Any]) -> bool:
    return any(type(v) is Damaged for v in row)


def decode_failed(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and "decode" in str(e).lower()


def read(
    db: sqlite3.Connection,
    sql: str,
    args: Sequence[Any] = (),
    row_factory: Any = "inherit",
) -> tuple[list[Any], list[Any]]:
    """Rows of `sql`, and apart the rows with a damaged text (values as `Damaged`). The fast
    path is SQLite's own decoding; a read that fails to decode is read again, tolerant."""
    cur = db.cursor()
    if row_factory != "inherit":
        cur.row_factory = row_factory
    try:
        return cur.execute(sql, args).fetchall(), []
    except sqlite3.OperationalError as e:
        if not decode_failed(e):
            raise
    old = db.text_factory
    db.text_factory = text
    try:
        cur = db.cursor()
        if row_factory != "inherit":
            cur.row_factory = row_factory
        rows = cur.execute(sql, args).fetchall()
    finally:
        db.text_factory = old
    good: list[Any] = []
    bad: list[Any] = []
    for r in rows:
        (bad if is_damaged(tuple(r)) else good).append(r)
    return good, bad
