"""Unreported drops: counts of dropped rows kept in `meta.unreported_drops` until one upstream
`data_dropped` event carries them (invariant 4: every drop is counted and reported).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

DROP_KINDS = ("history", "unsent_readings", "unsent_events", "unsent_alerts")


def add(db: sqlite3.Connection, kind: str, n: int, reason: str) -> None:
    """Count `n` dropped rows of `kind`, inside the caller's transaction (the drop's own)."""
    row = db.execute("SELECT value FROM meta WHERE key='unreported_drops'").fetchone()
    data: dict[str, Any] = json.loads(row[0]) if row else {}
    data[kind] = int(data.get(kind, 0)) + n
    reasons = set(data.get("reasons", []))
    reasons.add(reason)
    data["reasons"] = sorted(reasons)
    db.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('unreported_drops', ?)",
        (json.dumps(data),),
    )


def move_to_outbox(
    db: sqlite3.Connection,
    make_row: Callable[[dict[str, Any]], Any],
    insert_outbox: Callable[[sqlite3.Connection, Sequence[Any]], None],
) -> dict[str, Any]:
    """The counts so far become one outbox row and start again from zero; returns them."""
    row = db.execute("SELECT value FROM meta WHERE key='unreported_drops'").fetchone()
    if row is None:
        return {}
    data = json.loads(row[0])
    insert_outbox(db, [make_row(data)])
    db.execute("DELETE FROM meta WHERE key='unreported_drops'")
    return dict(data)
