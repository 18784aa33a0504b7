"""Bin fill: collections (a fall in fill), overflowing hours, wasted trips, a suggested interval.

Pure, streaming: O(1) per reading; collections and per-day maxima are the only growing state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway_agent.model import Device
from gateway_agent.reports.period import Day, DayCursor, Period, iso_z
from gateway_agent.reports.settings import ReportSettings

KIND = "bins"
DEVICE_CLASS = "bin"
MERGE_S = 3600.0  # a fall continuing within an hour is the same emptying (lift, then settle)


@dataclass(frozen=True, slots=True)
class BinsParams:
    pass


def params(dev: Device, s: ReportSettings) -> BinsParams:
    return BinsParams()


def fields(p: BinsParams) -> tuple[str, ...]:
    return ("fill_pct",)


class BinsSummary:
    def __init__(self, period: Period, days: list[Day], s: ReportSettings) -> None:
        self.s, self.days = s, days
        self.b = s.bins
        self.gap_s = s.max_gap_min * 60.0
        self.cursor = DayCursor(days)
        self.day_max = [-math.inf] * len(days)
        self.prev: tuple[float, float] | None = None
        self.n = 0
        self.over_s = 0.0
        self.first_over: float | None = None
        self.collections: list[list[float]] = []  # [time, fill before, fill after]
        self.first_t: tuple[float, float] | None = None

    def feed(self, t: float, v: float) -> None:
        di = self.cursor.index(t)
        if not 0 <= di < len(self.days):
            return
        self.n += 1
        self.day_max[di] = max(self.day_max[di], v)
        if self.first_t is None:
            self.first_t = (t, v)
        if v > self.b.overflow_pct and self.first_over is None:
            self.first_over = t
        p = self.prev
        if p is not None:
            if p[1] > self.b.overflow_pct:
                self.over_s += min(t - p[0], self.gap_s)
            last = self.collections[-1] if self.collections else None
            if (
                last is not None
                and t - last[0] <= MERGE_S
                and v < last[2]
                and p[1] <= last[2] + 1e-9
            ):
                last[2] = v  # the same emptying, still falling
            elif p[1] - v >= self.b.emptied_drop_pct:
                self.collections.append([t, p[1], v])
        self.prev = (t, v)

    def result(self) -> dict[str, Any]:
        b = self.b
        if self.n == 0:
            return {"verdict": "insufficient_data", "reasons": ["no_data"], "readings": 0,
                    "collections": [], "collections_count": 0, "wasted_collections": 0,
                    "hours_above_overflow": 0.0, "suggested_interval_days": None,
                    "current_interval_days": None, "fill_rate_pct_per_day": None,
                    "daily_max_pct": [None] * len(self.days), "first_problem": None,
                    "_first_problem_ts": None}  # fmt: skip
        cols = [
            {
                "time": iso_z(t),
                "fill_pct": round(before, 1),
                "after_pct": round(after, 1),
                "wasted": before < b.wasted_below_pct,
            }  # fmt: skip
            for t, before, after in self.collections
        ]
        wasted = [c for c in self.collections if c[1] < b.wasted_below_pct]
        # Fill rate: the rise over each whole cycle (after one emptying to just before the next).
        rise = dur = 0.0
        for (t0, _, a0), (t1, before1, _) in zip(
            self.collections, self.collections[1:], strict=False
        ):
            rise += before1 - a0
            dur += t1 - t0
        rate = rise / (dur / 86400.0) if dur > 0 and rise > 0 else None
        suggested = None
        if rate:
            after = sum(c[2] for c in self.collections) / len(self.collections)
            days = (b.target_fill_pct - after) / rate
            suggested = min(90.0, max(0.5, round(days * 2) / 2))
        current = (
            round(
                (self.collections[-1][0] - self.collections[0][0])
                / 86400.0
                / (len(self.collections) - 1),
                1,
            )
            if len(self.collections) > 1
            else None
        )
        hours_over = round(self.over_s / 3600.0, 2)
        reasons = []
        if hours_over > b.max_overflow_hours:
            reasons.append("overflowing")
        if len(wasted) > b.max_wasted_collections:
            reasons.append("wasted_collections")
        problems = [x for x in (self.first_over if "overflowing" in reasons else None,
                                wasted[0][0] if wasted and "wasted_collections" in reasons else None)
                    if x is not None]  # fmt: skip
        first = min(problems) if problems else None
        return {
            "verdict": "fail" if reasons else "pass",
            "reasons": reasons,
            "readings": self.n,
            "collections": cols,
            "collections_count": len(cols),
            "wasted_collections": len(wasted),
            "mean_fill_at_collection_pct": (
                round(sum(c[1] for c in self.collections) / len(self.collections), 1)
                if cols
                else None
            ),
            "hours_above_overflow": hours_over,
            "fill_rate_pct_per_day": round(rate, 2) if rate else None,
            "current_interval_days": current,
            "suggested_interval_days": suggested,
            "daily_max_pct": [round(v, 1) if math.isfinite(v) else None for v in self.day_max],
            "first_problem": iso_z(first) if first is not None else None,
            "_first_problem_ts": first,
        }


def summarize(
    rows: Iterable[tuple[float, tuple[Any, ...]]],
    p: BinsParams,
    period: Period,
    days: list[Day],
    s: ReportSettings,
) -> dict[str, Any]:
    """One bin's figures from its rows (time, (fill_pct,)) in time order."""
    acc = BinsSummary(period, days, s)
    for t, vals in rows:
        v = vals[0]
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            acc.feed(t, float(v))
    return acc.result()
