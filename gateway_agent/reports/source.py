"""Rows for the reports, streamed from the agent's SQLite file opened read-only.

One query per device on the store's `readings_dev_time (dev_eui, time)` index, read in chunks
(fetchmany), so memory does not grow with the month. Values are picked out of the stored
measurements JSON by SQLite (json_extract); a row SQLite cannot parse falls back to Python.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gateway_agent.errors import StoreError
from gateway_agent.model import DEVICE_CLASSES, Device
from gateway_agent.reports.period import Period
from gateway_agent.reports.report import Selector, build_report, select_devices
from gateway_agent.reports.settings import ReportSettings

CHUNK = 2000


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """The database read-only (works beside a running daemon: WAL readers do not block it)."""
    p = Path(path)
    if not p.exists():
        raise StoreError(f"{p}: no such database")
    try:
        db = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5, isolation_level=None)
        db.execute("SELECT 1 FROM readings LIMIT 1")
    except sqlite3.Error as e:
        raise StoreError(f"{p}: {e}") from e
    return db


def load_devices(db: sqlite3.Connection) -> list[Device]:
    """The provisioned devices without their keys (a report never needs them)."""
    out = []
    for eui, name, cls, codec, tags, settings in db.execute(
        "SELECT dev_eui, name, class, codec, tags, settings FROM devices ORDER BY dev_eui"
    ):
        out.append(
            Device(
                dev_eui=bytes.fromhex(eui),
                name=name or "",
                device_class=cls if cls in DEVICE_CLASSES else "other",
                codec=codec,
                tags=tuple(json.loads(tags or "[]")),
                settings=json.loads(settings or "{}"),
            )
        )
    return out


def _number(v: Any) -> Any:
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    return v if ok else None


def stream_rows(
    db: sqlite3.Connection,
    dev_eui: bytes,
    fields: Sequence[str],
    start: float,
    end: float,
    chunk: int = CHUNK,
) -> Iterator[tuple[float, tuple[Any, ...]]]:
    """(time, values aligned with `fields`) for one device, time order, start <= time < end.

    Rows carrying none of the fields are skipped."""
    paths = [f'$."{f}"' for f in fields]
    cols = ", ".join("json_extract(measurements, ?)" for _ in paths)
    sql = f"SELECT time, {cols} FROM readings WHERE dev_eui=? AND time>=? AND time<? ORDER BY time"
    eui = dev_eui.hex()
    n_at_last = 0
    last_t = start
    cur = db.execute(sql, (*paths, eui, start, end))
    try:
        while True:
            rows = cur.fetchmany(chunk)
            if not rows:
                return
            for r in rows:
                t = r[0]
                n_at_last = n_at_last + 1 if t == last_t else 1
                last_t = t
                vals = r[1:]
                if any(v is not None for v in vals):
                    yield t, vals
    except sqlite3.OperationalError as e:
        if "JSON" not in str(e):
            raise StoreError(str(e)) from e
    finally:
        cur.close()
    # A row SQLite's JSON parser refused (NaN written by Python, say): carry on in Python,
    # from the last time seen, skipping the rows at that time already given.
    skip = n_at_last
    cur = db.execute(
        "SELECT time, measurements FROM readings WHERE dev_eui=? AND time>=? AND time<? ORDER BY time",
        (eui, last_t, end),
    )
    with contextlib.closing(cur):
        while rows := cur.fetchmany(chunk):
            for t, text in rows:
                if skip and t == last_t:
                    skip -= 1
                    continue
                try:
                    m = json.loads(text)
                except (ValueError, TypeError):
                    continue
                if not isinstance(m, dict):
                    continue
                vals = tuple(_number(m.get(f)) for f in fields)
                if any(v is not None for v in vals):
                    yield t, vals


def run_report(
    db: str | Path | sqlite3.Connection,
    kind: str,
    period: Period,
    selector: Selector | None = None,
    settings: ReportSettings | None = None,
    devices: Sequence[Device] | None = None,
) -> dict[str, Any]:
    """The one entry point for the CLI (offline) and the control socket (online).

    `db`: a path (opened read-only here, read in one snapshot) or an open connection.
    `devices`: the daemon's current device list; None reads the devices table.
    Raises ConfigError (bad kind, bad device report settings) or StoreError.
    """
    settings = settings or ReportSettings()
    own = not isinstance(db, sqlite3.Connection)
    conn = db if isinstance(db, sqlite3.Connection) else open_readonly(db)
    try:
        if own:
            conn.execute("BEGIN")  # one snapshot: the daemon may commit meanwhile
        devs = list(devices) if devices is not None else load_devices(conn)
        chosen = select_devices(kind, devs, selector or Selector())
        start, end = period.start, period.end
        return build_report(
            kind, period, chosen, lambda d, f: stream_rows(conn, d.dev_eui, f, start, end), settings
        )
    except sqlite3.Error as e:
        raise StoreError(str(e)) from e
    finally:
        if own:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            conn.close()
