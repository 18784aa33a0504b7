"""Local hour-of-week for daily-pattern baselines, without a tz database (no IO). Pure.

Europe/London: GMT, and BST (UTC+1) from 01:00 UTC on the last Sunday of March to 01:00 UTC on
the last Sunday of October (Summer Time Order 2002, the EU rule).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

ZONES = ("Europe/London", "UTC")


def _last_sunday_0100(year: int, month: int) -> float:
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, 1, tzinfo=UTC)
    last = nxt - timedelta(days=1)
    return (last - timedelta(days=(last.weekday() - 6) % 7)).timestamp()


def utc_offset_s(ts: float, zone: str) -> int:
    if zone == "UTC":
        return 0
    year = datetime.fromtimestamp(ts, UTC).year
    return 3600 if _last_sunday_0100(year, 3) <= ts < _last_sunday_0100(year, 10) else 0


def hour_of_week(ts: float, zone: str) -> int:
    """0 = Monday 00:00-01:00 local, 167 = Sunday 23:00-24:00 local."""
    local = ts + utc_offset_s(ts, zone)
    days = math.floor(local / 86400)
    return ((days + 3) % 7) * 24 + math.floor(local / 3600) % 24  # 1970-01-01 was a Thursday


def label(bucket: int, buckets: int) -> str:
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    h = bucket % 24
    return f"{h:02d}:00" if buckets == 24 else f"{days[bucket // 24]} {h:02d}:00"
