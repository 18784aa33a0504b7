"""The `devices` and `dev_nonces` tables: provisioning, sessions, frame counters, join nonces.
Per-uplink FCnt and last-seen updates ride in the group commit (store/batch.py).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from gateway_agent.errors import StoreError
from gateway_agent.logfmt import log_event
from gateway_agent.model import Device
from gateway_agent.secret import Secret
from gateway_agent.store import damaged

log = logging.getLogger("gateway_agent.store")


def _hex(b: bytes | None) -> str | None:
    return b.hex() if b is not None else None


def _key(b: Secret | None) -> bytes | None:
    return b.reveal_bytes() if b is not None else None


def _secret(b: bytes | None) -> Secret | None:
    return Secret(bytes(b)) if b is not None else None


def upsert(db: sqlite3.Connection, devs: Iterable[Device], origin: str, now: float) -> int:
    """Insert or update; a changed ABP session (keys or address) restarts its counters, an
    OTAA device keeps its joined session while its AppKey stays. Returns how many."""
    n = 0
    for d in devs:
        old = db.execute(
            "SELECT dev_addr, nwk_s_key, app_s_key, app_key FROM devices WHERE dev_eui=?",
            (d.dev_eui.hex(),),
        ).fetchone()
        keys_changed = old is None or (
            old[0] != _hex(d.dev_addr) or old[1] != _key(d.nwk_s_key) or old[2] != _key(d.app_s_key)
        )
        if d.activation == "otaa" and old is not None and old[3] == _key(d.app_key):
            keys_changed = False  # keep the joined session
        db.execute(
            """INSERT INTO devices(dev_eui, name, class, codec, tags, settings, dev_addr,
                 nwk_s_key, app_s_key, join_eui, app_key, relaxed_fcnt, origin, created, updated)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT(dev_eui) DO UPDATE SET name=excluded.name, class=excluded.class,
                 codec=excluded.codec, tags=excluded.tags, settings=excluded.settings,
                 join_eui=excluded.join_eui, app_key=excluded.app_key,
                 relaxed_fcnt=excluded.relaxed_fcnt, origin=excluded.origin, updated=excluded.updated""",
            (
                d.dev_eui.hex(),
                d.name,
                d.device_class,
                d.codec,
                json.dumps(list(d.tags)),
                json.dumps(dict(d.settings)),
                _hex(d.dev_addr),
                _key(d.nwk_s_key),
                _key(d.app_s_key),
                _hex(d.join_eui),
                _key(d.app_key),
                int(d.relaxed_fcnt),
                origin,
                now,
                now,
            ),
        )
        if keys_changed and d.activation == "abp":
            # A new ABP session (new keys or address) starts its counters afresh.
            db.execute(
                "UPDATE devices SET dev_addr=?, nwk_s_key=?, app_s_key=?, fcnt_up=NULL, fcnt_down=0,"
                " fcnt_resets=0 WHERE dev_eui=?",
                (_hex(d.dev_addr), _key(d.nwk_s_key), _key(d.app_s_key), d.dev_eui.hex()),
            )
        n += 1
    return n


def remove(db: sqlite3.Connection, dev_eui: bytes) -> bool:
    cur = db.execute("DELETE FROM devices WHERE dev_eui=?", (dev_eui.hex(),))
    db.execute("DELETE FROM rule_state WHERE dev_eui=?", (dev_eui.hex(),))
    return cur.rowcount > 0


def euis_of_origin(db: sqlite3.Connection, origin: str) -> list[str]:
    return [r[0] for r in db.execute("SELECT dev_eui FROM devices WHERE origin=?", (origin,))]


def from_row(r: sqlite3.Row) -> Device:
    return Device(
        dev_eui=bytes.fromhex(r["dev_eui"]),
        name=r["name"],
        device_class=r["class"],
        codec=r["codec"],
        tags=tuple(json.loads(r["tags"])),
        settings=json.loads(r["settings"]),
        dev_addr=bytes.fromhex(r["dev_addr"]) if r["dev_addr"] else None,
        nwk_s_key=_secret(r["nwk_s_key"]),
        app_s_key=_secret(r["app_s_key"]),
        join_eui=bytes.fromhex(r["join_eui"]) if r["join_eui"] else None,
        app_key=_secret(r["app_key"]),
        relaxed_fcnt=bool(r["relaxed_fcnt"]),
    )


_STATE = (
    *("fcnt_up", "fcnt_down", "fcnt_resets", "join_nonce", "origin"),
    *("last_seen", "last_rssi", "last_snr"),
)


def _read(db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """Device rows; a row with a damaged text (a bad byte on the card) is kept, its text read
    with U+FFFD for the bad bytes, and logged: losing the row would lose the device's session and
    FCnt state, which replay protection depends on. A damaged DevEUI cannot be read: skipped."""
    rows, bad = damaged.read(db, sql, args)
    for r in bad:
        fixed = {
            k: v.raw.decode("utf-8", "replace") if type(v) is damaged.Damaged else v
            for k, v in zip(r.keys(), tuple(r), strict=True)
        }
        try:
            bytes.fromhex(fixed["dev_eui"])
        except (TypeError, ValueError):
            log_event(log, logging.ERROR, "device_row_unreadable")
            continue
        log_event(log, logging.WARNING, "device_row_damaged", dev_eui=fixed["dev_eui"])
        rows.append(fixed)
    return rows


def select_all(db: sqlite3.Connection) -> list[Any]:
    return _read(db, "SELECT * FROM devices ORDER BY dev_eui")


def with_state(rows: list[sqlite3.Row]) -> list[tuple[Device, dict[str, Any]]]:
    """Each device with its runtime state (fcnt_up, fcnt_down, fcnt_resets, last_seen, ...)."""
    out = []
    for r in rows:
        st = {k: r[k] for k in _STATE}
        st["last_values"] = json.loads(r["last_values"]) if r["last_values"] else {}
        out.append((from_row(r), st))
    return out


def select_where(db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[Any]:
    return _read(db, f"SELECT * FROM devices WHERE {where}", args)


def with_counters(rows: list[sqlite3.Row]) -> list[tuple[Device, dict[str, Any]]]:
    """Each device with the counters the ingest path needs (fcnt_up, fcnt_down, fcnt_resets,
    join_nonce)."""
    return [
        (
            from_row(r),
            {
                "fcnt_up": r["fcnt_up"],
                "fcnt_down": r["fcnt_down"],
                "fcnt_resets": r["fcnt_resets"],
                "join_nonce": r["join_nonce"],
            },
        )
        for r in rows
    ]


def used_dev_nonces(db: sqlite3.Connection, dev_eui: bytes) -> set[int]:
    return {
        r[0]
        for r in db.execute("SELECT dev_nonce FROM dev_nonces WHERE dev_eui=?", (dev_eui.hex(),))
    }


def all_dev_nonces(db: sqlite3.Connection) -> dict[str, list[int]]:
    """Every device's used DevNonces (dev_eui hex -> nonces), for the ingest's memory."""
    out: dict[str, list[int]] = {}
    for eui, nonce in db.execute("SELECT dev_eui, dev_nonce FROM dev_nonces"):
        out.setdefault(eui, []).append(nonce)
    return out


def bump_fcnt_down(db: sqlite3.Connection, dev_eui: bytes) -> int:
    """Returns the FCntDown to use and stores the next one."""
    row = db.execute("SELECT fcnt_down FROM devices WHERE dev_eui=?", (dev_eui.hex(),)).fetchone()
    if row is None:
        raise StoreError(f"unknown device {dev_eui.hex()}")
    db.execute("UPDATE devices SET fcnt_down=fcnt_down+1 WHERE dev_eui=?", (dev_eui.hex(),))
    return int(row[0])


def next_join_nonce(db: sqlite3.Connection, dev_eui: bytes) -> int:
    db.execute("UPDATE devices SET join_nonce=join_nonce+1 WHERE dev_eui=?", (dev_eui.hex(),))
    row = db.execute("SELECT join_nonce FROM devices WHERE dev_eui=?", (dev_eui.hex(),)).fetchone()
    return int(row[0])


def counts(db: sqlite3.Connection, heard_since: float) -> tuple[int, int]:
    """(provisioned, heard at or after `heard_since`): the overview's figures, counted by
    SQLite instead of building every Device."""
    row = db.execute(
        "SELECT count(*), count(CASE WHEN last_seen >= ? THEN 1 END) FROM devices",
        (heard_since,),
    ).fetchone()
    return int(row[0]), int(row[1])


def session_source(db: sqlite3.Connection, dev_eui: bytes) -> dict[str, Any] | None:
    """Where the device's current session came from when it was not a join this agent answered
    (passive mode: `{"source": "chirpstack", "server": ..., "devAddr": ..., "fetched": ...}`,
    written by gateway_agent/relay/sessions.py in `meta`). None when the note is missing or is
    about an earlier session (its DevAddr is no longer the device's)."""
    eui = dev_eui.hex()
    row = db.execute("SELECT value FROM meta WHERE key=?", ("session_source:" + eui,)).fetchone()
    if row is None:
        return None
    try:
        note = json.loads(row[0])
    except ValueError:
        return None
    addr = db.execute("SELECT dev_addr FROM devices WHERE dev_eui=?", (eui,)).fetchone()
    if not isinstance(note, dict) or addr is None or note.get("devAddr") != addr[0]:
        return None
    return note


def session_sources(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """`session_source` of every device that has a current note, in one read (for the list)."""
    addrs = dict(db.execute("SELECT dev_eui, dev_addr FROM devices").fetchall())
    out: dict[str, dict[str, Any]] = {}
    for key, value in db.execute(
        "SELECT key, value FROM meta WHERE key >= 'session_source:' AND key < 'session_source;'"
    ):
        eui = key.split(":", 1)[1]
        try:
            note = json.loads(value)
        except ValueError:
            continue
        if isinstance(note, dict) and eui in addrs and note.get("devAddr") == addrs[eui]:
            out[eui] = note
    return out


def carry_fcnt_up(db: sqlite3.Connection, fcnt_up: Mapping[str, int]) -> None:
    """ABP sessions moved from another server keep their uplink counter: never lowered (a
    re-import of an older export must not reopen counters already used)."""
    db.executemany(
        "UPDATE devices SET fcnt_up = max(coalesce(fcnt_up, -1), ?)"
        " WHERE dev_eui=? AND app_key IS NULL AND nwk_s_key IS NOT NULL",
        [(int(n), eui.lower()) for eui, n in fcnt_up.items() if 0 <= int(n) <= 0xFFFFFFFF],
    )
