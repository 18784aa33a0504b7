"""How times and identifiers appear in the CLI's tables and lines."""

from __future__ import annotations

import datetime as dt
import time

from rich.table import Column


def ago(t: float | None) -> str:
    if not t:
        return "never"
    s = time.time() - t
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    if s < 172800:
        return f"{s / 3600:.0f}h ago"
    return f"{s / 86400:.0f}d ago"


def key_column(header: str, values: list[str] | None = None) -> Column:
    """An identifier column that is never cut with an ellipsis: it gets copied into commands."""
    width = max([16, *(len(v) for v in values or [])])
    return Column(header, no_wrap=True, min_width=width, overflow="fold")


def when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def short_when(t: float | None) -> str:
    """HH:MM:SS today, MM-DD HH:MM before."""
    if not t:
        return "-"
    d = dt.datetime.fromtimestamp(t)
    return d.strftime("%H:%M:%S" if d.date() == dt.date.today() else "%m-%d %H:%M")
