"""One report request (as the CLI sends it over the control socket) -> the report object.

The CLI (database read-only, daemon stopped) and the daemon's `report` command both call
`run_request`, so a running and a stopped agent give the same JSON. A request from the socket
is checked here field by field: bad input is a ConfigError naming the field, never a crash.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway_agent.errors import ConfigError
from gateway_agent.reports.period import date_period, month_period
from gateway_agent.reports.report import KINDS, Selector
from gateway_agent.reports.settings import ReportSettings
from gateway_agent.reports.source import run_report

MAX_SELECTORS = 1000


def _date(v: Any, name: str) -> str:
    try:
        return dt.date.fromisoformat(v).isoformat()
    except (TypeError, ValueError):
        raise ConfigError(name, "expected a date YYYY-MM-DD") from None


def _strings(v: Any, name: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or len(v) > MAX_SELECTORS or not all(isinstance(x, str) for x in v):
        raise ConfigError(name, f"expected a list of at most {MAX_SELECTORS} strings")
    return tuple(v)


def run_request(
    db: str | Path | sqlite3.Connection, req: Mapping[str, Any], settings: ReportSettings
) -> dict[str, Any]:
    """`req`: kind, and month (YYYY-MM) or from + to (YYYY-MM-DD); devices (hex DevEUIs), tags."""
    kind = req.get("kind")
    if kind not in KINDS:
        raise ConfigError("kind", f"expected one of {', '.join(sorted(KINDS))}")
    month = req.get("month")
    if month is not None:
        if not isinstance(month, str):
            raise ConfigError("month", "expected YYYY-MM")
        period = month_period(month, settings.timezone)
    else:
        first, last = _date(req.get("from"), "from"), _date(req.get("to"), "to")
        period = date_period(first, last, settings.timezone)
    try:
        euis = tuple(bytes.fromhex(d) for d in _strings(req.get("devices"), "devices"))
    except ValueError:
        raise ConfigError("devices", "expected hex DevEUIs") from None
    if any(len(e) != 8 for e in euis):
        raise ConfigError("devices", "a DevEUI is 8 bytes (16 hex digits)")
    sel = Selector(dev_euis=euis, tags=_strings(req.get("tags"), "tags"))
    return run_report(db, str(kind), period, sel, settings)
