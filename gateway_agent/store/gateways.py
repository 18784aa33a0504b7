"""The `gateways` table: the last radio statistics of each packet forwarder, kept across restarts."""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def save(db: sqlite3.Connection, stats: dict[str, dict[str, Any]], now: float) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO gateways VALUES (?,?,?)",
        [(gid, json.dumps(st), now) for gid, st in stats.items()],
    )


def load(db: sqlite3.Connection) -> dict[str, Any]:
    return {r[0]: json.loads(r[1]) for r in db.execute("SELECT gateway_id, stats FROM gateways")}
