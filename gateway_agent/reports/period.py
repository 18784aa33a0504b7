"""A report's period as local days and weeks, and a cursor that maps a reading time to them. Pure.

Local time without a tz database: `gateway_agent.rules.localtime` (Europe/London or UTC).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from gateway_agent.errors import ConfigError
from gateway_agent.rules.localtime import utc_offset_s

_EPOCH = dt.date(1970, 1, 1)


def _naive(day: dt.date) -> float:
    """Seconds from 1970-01-01 00:00 to `day` 00:00 on a wall clock (no zone)."""
    return float((day - _EPOCH).days * 86400)


def local_midnight(day: dt.date, zone: str) -> float:
    """The Unix time at which `day` starts in `zone` (UK changes clocks at 01:00 UTC, never at
    midnight, so the offset at naive midnight minus one hour is the day's starting offset)."""
    naive = _naive(day)
    return naive - utc_offset_s(naive - 3600, zone)


@dataclass(frozen=True, slots=True)
class Day:
    date: dt.date
    start: float  # Unix time of local midnight
    end: float
    offset_s: int  # UTC offset at local noon (school hours never straddle a clock change)

    def wall_minute(self, ts: float) -> float:
        """Minutes after local midnight on the wall clock."""
        return (ts + self.offset_s - _naive(self.date)) / 60.0

    def at_wall_minute(self, minute: float) -> float:
        return _naive(self.date) + minute * 60.0 - self.offset_s


@dataclass(frozen=True, slots=True)
class Period:
    """Local dates `first`..`last` inclusive; `start`/`end` are the Unix bounds [start, end)."""

    first: dt.date
    last: dt.date
    zone: str = "Europe/London"

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ConfigError("to", "the period ends before it starts")
        if (self.last - self.first).days > 366:
            raise ConfigError("to", "a report covers at most 367 days")

    @property
    def start(self) -> float:
        return local_midnight(self.first, self.zone)

    @property
    def end(self) -> float:
        return local_midnight(self.last + dt.timedelta(days=1), self.zone)

    @property
    def n_days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def months(self) -> float:
        """The period's length in months of 30.44 days (365.25 / 12), for the value sums."""
        return self.n_days / 30.4375

    def days(self) -> list[Day]:
        out = []
        for i in range(self.n_days):
            d = self.first + dt.timedelta(days=i)
            start = local_midnight(d, self.zone)
            end = local_midnight(d + dt.timedelta(days=1), self.zone)
            noon = _naive(d) + 12 * 3600
            out.append(Day(d, start, end, utc_offset_s(noon - 3600, self.zone)))
        return out

    def weeks(self) -> list[tuple[str, int, int]]:
        """ISO weeks clipped to the period: (label `2026-W03`, first day index, last day index)."""
        out: list[tuple[str, int, int]] = []
        for i in range(self.n_days):
            y, w, _ = (self.first + dt.timedelta(days=i)).isocalendar()
            label = f"{y}-W{w:02d}"
            if out and out[-1][0] == label:
                out[-1] = (label, out[-1][1], i)
            else:
                out.append((label, i, i))
        return out


def month_period(month: str, zone: str = "Europe/London") -> Period:
    """`YYYY-MM` -> that calendar month."""
    try:
        first = dt.date.fromisoformat(month + "-01")
    except ValueError:
        raise ConfigError("month", f'expected "YYYY-MM", got "{month}"') from None
    nxt = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Period(first, nxt - dt.timedelta(days=1), zone)


def date_period(first: str, last: str, zone: str = "Europe/London") -> Period:
    """Two ISO dates, both inclusive (`--from 2026-01-05 --to 2026-01-30`)."""
    try:
        return Period(dt.date.fromisoformat(first), dt.date.fromisoformat(last), zone)
    except ValueError:
        raise ConfigError("from", f'expected dates "YYYY-MM-DD", got "{first}", "{last}"') from None


class DayCursor:
    """Maps times given in ascending order to day indexes in O(1) amortised (rows are sorted)."""

    __slots__ = ("days", "i", "_end")

    def __init__(self, days: list[Day]) -> None:
        self.days = days
        self.i = 0
        self._end = days[0].end if days else 0.0

    def index(self, ts: float) -> int:
        """Day index of `ts`, or -1 before the first day / len(days) after the last."""
        if not self.days or ts < self.days[0].start:
            return -1
        if ts < self._end and ts >= self.days[self.i].start:
            return self.i
        if ts < self.days[self.i].start:  # out of order: search from the start
            self.i = 0
        while self.i < len(self.days) and ts >= self.days[self.i].end:
            self.i += 1
        if self.i >= len(self.days):
            self.i = len(self.days) - 1
            self._end = self.days[self.i].end
            return len(self.days)
        self._end = self.days[self.i].end
        return self.i


def iso_z(ts: float) -> str:
    """Unix time -> `2026-01-14T10:05:00Z` (the report's one time format)."""
    return dt.datetime.fromtimestamp(round(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
