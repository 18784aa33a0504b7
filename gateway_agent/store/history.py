"""The history tables: `readings`, `alerts` and `rule_state`, read by the CLI and the rules.
New rows arrive in the group commit (store/batch.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from gateway_agent.store import damaged
from gateway_agent.store.outbox import PRIO_READING


def readings(
    db: sqlite3.Connection,
    dev_eui: bytes | None,
    since: float | None,
    limit: int,
    after_seq: int | None,
    bad_seqs: list[int] | None = None,
) -> list[sqlite3.Row]:
    """The newest `limit` rows, or with `after_seq` the next `limit` rows after it. Rows with
    damaged text are left out, their seqs in `bad_seqs` (store/damaged.py)."""
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
    rows, bad = damaged.read(db, sql, (*args, limit))
    if bad_seqs is not None:
        bad_seqs.extend(r["seq"] for r in bad)
    return rows


def reading_dicts(
    rows: list[sqlite3.Row], oldest_first: bool, bad_seqs: list[int] | None = None
) -> list[dict[str, Any]]:
    """Rows as JSON-able dicts: payload in hex, measurements and flags decoded. A row whose
    JSON does not parse is left out (its seq in `bad_seqs`)."""
    out = []
    for r in rows:
        d = dict(r)
        try:
            d["payload"] = bytes(d["payload"]).hex()
            d["measurements"] = json.loads(d["measurements"])
            d["flags"] = json.loads(d["flags"])
        except (ValueError, TypeError):
            if bad_seqs is not None:
                bad_seqs.append(d["seq"])  # SELECT * FROM readings: always there
            continue
        out.append(d)
    if oldest_first:
        out.reverse()
    return out


def expire_readings(db: sqlite3.Connection, before: float) -> int:
    """Retention: forwarded readings stamped before `before` go; returns how many. A reading
    still in the outbox stays, whatever its time says (a clock stepped from 1970 makes every
    reading look old): only readings before the oldest unsent one in seq order may go.
    Imported history (`readings import`, origin 'import') is kept: it was brought in for the
    reports; only the disk cap's shedding removes it, oldest first."""
    horizon = unsent_horizon(db)
    radio = "origin = 'radio' AND "
    if horizon is None:
        return int(db.execute(f"DELETE FROM readings WHERE {radio}time < ?", (before,)).rowcount)
    if horizon >= 0:
        sql = f"DELETE FROM readings WHERE {radio}seq < ? AND time < ?"
        return int(db.execute(sql, (horizon, before)).rowcount)
    # The oldest unsent readings have no history copy (shed at the cap): ask the outbox by id.
    sql = (
        f"DELETE FROM readings WHERE {radio}time < ? AND id NOT IN"
        f" (SELECT msg_id FROM outbox WHERE priority = {PRIO_READING})"
    )
    return int(db.execute(sql, (before,)).rowcount)


def unsent_horizon(db: sqlite3.Connection) -> int | None:
    """The history seq of the oldest reading still in the outbox (None: none unsent). Readings
    and their outbox rows are written in the same order in each commit, so every history row
    from there on may still be unsent. When that row's history copy is already gone (shed at
    the cap), the next unsent ones are tried; past a few, nothing is expired this round."""
    unsent = db.execute(
        "SELECT dev_eui, msg_id FROM outbox WHERE priority = ? ORDER BY seq LIMIT 16",
        (PRIO_READING,),
    ).fetchall()
    if not unsent:
        return None
    for dev_eui, msg_id in unsent:  # readings_dev_time: the device's rows only
        row = db.execute(
            "SELECT min(seq) FROM readings WHERE dev_eui = ? AND id = ?", (dev_eui, msg_id)
        ).fetchone()
        if row[0] is not None:
            return int(row[0])
    return -1


def drop_oldest_readings(db: sqlite3.Connection, n: int) -> int:
    return int(
        db.execute(
            "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
            (n,),
        ).rowcount
    )


def alerts(
    db: sqlite3.Connection, limit: int, only_open: bool, bad: list[Any] | None = None
) -> list[sqlite3.Row]:
    """Newest first; rows with damaged text left out (into `bad`)."""
    where = " WHERE state='raised' AND acked=0" if only_open else ""
    rows, dmg = damaged.read(
        db, f"SELECT * FROM alerts{where} ORDER BY time DESC LIMIT ?", (limit,)
    )
    if bad is not None:
        bad.extend(dmg)
    return rows


def count_open_alerts(db: sqlite3.Connection, limit: int) -> int:
    """Open alerts (raised, not acknowledged), counted up to `limit`."""
    row = db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM alerts WHERE state='raised' AND acked=0 LIMIT ?)",
        (limit,),
    ).fetchone()
    return int(row[0])


def ack_alert(db: sqlite3.Connection, alert_id: str) -> bool:
    return (
        db.execute(
            "UPDATE alerts SET acked=1, acked_at=? WHERE id=?",  # exact: the CLI resolves prefixes
            (time.time(), alert_id),
        ).rowcount
        > 0
    )


def rule_states(
    db: sqlite3.Connection, bad: list[tuple[Any, ...]] | None = None
) -> dict[tuple[str, str], str]:
    """Every rule's state per device; rows with damaged text left out (into `bad`)."""
    rows, dmg = damaged.read(db, "SELECT rule, dev_eui, state FROM rule_state", (), None)
    if bad is not None:
        bad.extend(dmg)
    return {(r[0], r[1]): r[2] for r in rows}


def drop_rule_states(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> int:
    """Damaged rule_state rows go (the rule starts again for that device): compared as raw
    bytes, since their text cannot be bound as a string."""
    n = 0
    for r in rows:
        key = [v.raw if isinstance(v, damaged.Damaged) else v.encode() for v in r[:2]]
        n += db.execute(
            "DELETE FROM rule_state WHERE CAST(rule AS BLOB)=? AND CAST(dev_eui AS BLOB)=?", key
        ).rowcount
    return int(n)
