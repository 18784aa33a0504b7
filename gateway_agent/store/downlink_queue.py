"""The `downlinks` table: downlinks queued by the CLI or rules until they go on air."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def enqueue(
    db: sqlite3.Connection, dev_eui: bytes, f_port: int, payload: bytes, confirmed: bool
) -> int | None:
    """Returns the new entry's seq."""
    return db.execute(
        "INSERT INTO downlinks(dev_eui, f_port, payload, confirmed, created) VALUES (?,?,?,?,?)",
        (dev_eui.hex(), f_port, payload, int(confirmed), time.time()),
    ).lastrowid


def pending(db: sqlite3.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute("SELECT * FROM downlinks WHERE sent IS NULL ORDER BY seq")]


def mark_sent(db: sqlite3.Connection, seq: int, fcnt_down: int) -> None:
    db.execute(
        "UPDATE downlinks SET sent=?, fcnt_down=? WHERE seq=?", (time.time(), fcnt_down, seq)
    )


def requeue(db: sqlite3.Connection, seq: int) -> None:
    db.execute("UPDATE downlinks SET sent=NULL, fcnt_down=NULL WHERE seq=?", (seq,))


def mark_downlinks(db: sqlite3.Connection, marks: dict[int, tuple[float, int] | None]) -> None:
    """Each seq's last state in a batch: (sent time, FCntDown) or None for unsent again."""
    db.executemany(
        "UPDATE downlinks SET sent=?, fcnt_down=? WHERE seq=?",
        [(m[0], m[1], seq) if m is not None else (None, None, seq) for seq, m in marks.items()],
    )


def get(db: sqlite3.Connection, seq: int) -> dict[str, Any] | None:
    row = db.execute("SELECT * FROM downlinks WHERE seq=?", (seq,)).fetchone()
    return dict(row) if row is not None else None
