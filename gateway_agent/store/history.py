"""The history tables: `readings`, `alerts` and `rule_state`, read by the CLI and the rules.
New rows arrive in the group commit (store/batch.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any


def readings(
    db: sqlite3.Connection,
    dev_eui: bytes | None,
    since: float | None,
    limit: int,
    after_seq: int | None,
) -> list[sqlite3.Row]:
    """The newest `limit` rows, or with `after_seq` the next `limit` rows after it."""
    where: list[str] = []
    args: list[Any] = []
    if dev_eui is not None:
        where.append("dev_eui=?")
        args.append(dev_eui.hex())
    if since is not None:
        where.append("time>=?")
        args.append(since)
    if after_seq is not None:
        where.append("seq>?")
        args.append(after_seq)
    sql = "SELECT * FROM readings" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY seq DESC LIMIT ?" if after_seq is None else " ORDER BY seq LIMIT ?"
    return db.execute(sql, (*args, limit)).fetchall()


def reading_dicts(rows: list[sqlite3.Row], oldest_first: bool) -> list[dict[str, Any]]:
    """Rows as JSON-able dicts: payload in hex, measurements and flags decoded."""
    out = []
    for r in rows:
        d = dict(r)
        d["payload"] = bytes(d["payload"]).hex()
        d["measurements"] = json.loads(d["measurements"])
        d["flags"] = json.loads(d["flags"])
        out.append(d)
    if oldest_first:
        out.reverse()
    return out


def expire_readings(db: sqlite3.Connection, before: float) -> int:
    """Retention: readings older than `before` go; returns how many."""
    return int(db.execute("DELETE FROM readings WHERE time < ?", (before,)).rowcount)


def drop_oldest_readings(db: sqlite3.Connection, n: int) -> int:
    return int(
        db.execute(
            "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
            (n,),
        ).rowcount
    )


def alerts(db: sqlite3.Connection, limit: int, only_open: bool) -> list[sqlite3.Row]:
    where = " WHERE state='raised' AND acked=0" if only_open else ""
    return db.execute(
        f"SELECT * FROM alerts{where} ORDER BY time DESC LIMIT ?", (limit,)
    ).fetchall()


def ack_alert(db: sqlite3.Connection, alert_id: str) -> bool:
    return (
        db.execute(
            "UPDATE alerts SET acked=1, acked_at=? WHERE id=?",  # exact: the CLI resolves prefixes
            (time.time(), alert_id),
        ).rowcount
        > 0
    )


def rule_states(db: sqlite3.Connection) -> dict[tuple[str, str], str]:
    return {(r[0], r[1]): r[2] for r in db.execute("SELECT rule, dev_eui, state FROM rule_state")}
