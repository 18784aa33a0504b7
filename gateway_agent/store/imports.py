"""Imported readings (`readings import`): history from a previous system, stored in one
transaction with origin 'import', ids that never collide with radio ones, no outbox rows."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway_agent.errors import BadInput

ORIGIN = "import"


class RowLike(Protocol):
    """What an import row offers (reports/importer.py's ImportRow has it)."""

    @property
    def dev_eui(self) -> bytes: ...

    @property
    def time(self) -> float: ...

    @property
    def measurements(self) -> Mapping[str, float]: ...


@dataclass(frozen=True, slots=True)
class Row:
    dev_eui: bytes
    time: float
    measurements: Mapping[str, float]


def to_json(rows: Sequence[RowLike]) -> list[list[Any]]:
    """Rows for a control request: [dev_eui hex, time, measurements]."""
    return [[r.dev_eui.hex(), r.time, dict(r.measurements)] for r in rows]


def from_json(items: Any) -> list[Row]:
    """The control request's rows back; BadInput on anything malformed."""
    if not isinstance(items, list):
        raise BadInput("rows: expected a list")
    out = []
    for it in items:
        try:
            eui_hex, t, m = it
            eui = bytes.fromhex(eui_hex)
            t = float(t)
            m = {str(k): float(v) for k, v in m.items()}
        except (TypeError, ValueError, AttributeError):
            raise BadInput(f"rows: bad row {str(it)[:80]}") from None
        if len(eui) != 8 or not math.isfinite(t) or not all(map(math.isfinite, m.values())):
            raise BadInput(f"rows: bad row {str(it)[:80]}")
        out.append(Row(eui, t, m))
    return out


def reading_id(dev_eui: bytes, t: float, m: Mapping[str, float]) -> str:
    """`import-{dev_eui}-{12 hex}`: never a radio id (those start with the DevEUI), and the same
    for the same reading, so importing a file twice stores it once."""
    key = f"{t!r}|{json.dumps(dict(m), sort_keys=True)}".encode()
    return f"import-{dev_eui.hex()}-{hashlib.sha256(key).hexdigest()[:12]}"


def unknown_devices(db: sqlite3.Connection, euis: set[str]) -> list[str]:
    known = {r[0] for r in db.execute("SELECT dev_eui FROM devices")}
    return sorted(euis - known)


def import_rows(db: sqlite3.Connection, rows: Sequence[RowLike], dry_run: bool) -> dict[str, Any]:
    """Inside the caller's transaction: refuse (BadInput, nothing written) when a DevEUI is not
    a configured device; else insert the rows not already there. Device state (FCnt, last
    seen) is never touched: imported history is not traffic. Returns the summary."""
    euis = {r.dev_eui.hex() for r in rows}
    unknown = unknown_devices(db, euis)
    if unknown:
        more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
        raise BadInput(
            f"unknown device(s) {', '.join(unknown[:20])}{more}: nothing imported"
            " (add them first: `gateway-agent devices add`)"
        )
    new: list[tuple[Any, ...]] = []
    present = 0
    for r in rows:
        eui = r.dev_eui.hex()
        rid = reading_id(r.dev_eui, r.time, r.measurements)
        # readings_dev_time finds it (readings has no index on id, see migration 1).
        hit = db.execute(
            "SELECT 1 FROM readings WHERE dev_eui=? AND time=? AND id=? LIMIT 1",
            (eui, r.time, rid),
        ).fetchone()
        if hit:
            present += 1
            continue
        m_json = json.dumps(dict(r.measurements), separators=(",", ":"), allow_nan=False)
        new.append((rid, eui, 0, None, r.time, 1, b"", m_json, "{}", None, None, None, 0, ORIGIN))
    if new and not dry_run:
        db.executemany(
            "INSERT INTO readings(id, dev_eui, fcnt, f_port, time, time_valid, payload,"
            " measurements, flags, decode_error, rssi, snr, gateways, origin)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            new,
        )
    times = [r.time for r in rows]
    return {
        "rows": len(rows),
        "new": len(new),
        "present": present,
        "devices": len(euis),
        "first": min(times) if times else None,
        "last": max(times) if times else None,
        "dry_run": dry_run,
    }
