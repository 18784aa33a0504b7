"""Durations as people write them in TOML ("90s", "10m", "2h", "7d", "1h30m") or seconds. Pure."""

from __future__ import annotations

import math
import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(value: object) -> float:
    """Seconds from a duration string or a non-negative number. Raises ValueError with a reason."""
    if isinstance(value, bool):
        raise ValueError('expected a duration such as "10m" or a number of seconds')
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError("expected a non-negative number of seconds")
        return float(value)
    if not isinstance(value, str):
        raise ValueError('expected a duration such as "10m" or a number of seconds')
    text = value.strip().lower().replace(" ", "")
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f'expected a duration such as "90s", "10m", "2h" or "7d", got "{value}"')
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 1200 -> "20m", 5400 -> "1h30m", 0 -> "0s"."""
    if seconds <= 0:
        return "0s"
    out, rest = [], seconds
    for unit in ("d", "h", "m", "s"):
        n = math.floor(rest / _UNITS[unit] + 1e-9)
        if n and (unit == "s" or rest >= _UNITS[unit]):
            out.append(f"{n}{unit}")
            rest -= n * _UNITS[unit]
    if rest > 1e-6:
        out.append(f"{rest:g}s")
    return "".join(out) or f"{seconds:g}s"
