"""Gully / culvert water level: time above warning, peak, rate-of-rise events, silt. Pure.

Streaming: a monotonic deque over the rise window and one baseline (daily minimum) per day.
The dry-weather baseline is the day's lowest level; a least-squares slope over the days shows
silt building up under the sensor.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway_agent.model import Device
from gateway_agent.reports.period import Day, DayCursor, Period, iso_z
from gateway_agent.reports.settings import ReportSettings, device_report_settings

KIND = "gullies"
DEVICE_CLASS = "gully"
MAX_EVENTS = 100  # listed in the report; the count is exact


@dataclass(frozen=True, slots=True)
class GulliesParams:
    warning_level_mm: float


def params(dev: Device, s: ReportSettings) -> GulliesParams:
    ds = device_report_settings(dev.settings, f"devices[{dev.dev_eui.hex()}].settings")
    return GulliesParams(float(ds.get("warning_level_mm", s.gullies.warning_level_mm)))


def fields(p: GulliesParams) -> tuple[str, ...]:
    return ("level_mm",)


class GulliesSummary:
    def __init__(
        self, p: GulliesParams, period: Period, days: list[Day], s: ReportSettings
    ) -> None:
        self.p, self.s, self.days = p, s, days
        self.g = s.gullies
        self.gap_s = s.max_gap_min * 60.0
        self.win_s = self.g.rise_window_min * 60.0
        self.cursor = DayCursor(days)
        self.day_min = [math.inf] * len(days)
        self.day_max = [-math.inf] * len(days)
        self.n = 0
        self.prev: tuple[float, float] | None = None
        self.above_s = 0.0
        self.first_above: float | None = None
        self.peak: tuple[float, float] | None = None
        self.window: deque[tuple[float, float]] = deque()  # increasing levels (monotonic min)
        self.in_event = False
        self.events: list[dict[str, Any]] = []
        self.n_events = 0

    def feed(self, t: float, v: float) -> None:
        di = self.cursor.index(t)
        if not 0 <= di < len(self.days):
            return
        self.n += 1
        self.day_min[di] = min(self.day_min[di], v)
        self.day_max[di] = max(self.day_max[di], v)
        if self.peak is None or v > self.peak[0]:
            self.peak = (v, t)
        warn = self.p.warning_level_mm
        if v > warn and self.first_above is None:
            self.first_above = t
        if self.prev is not None and self.prev[1] > warn:
            self.above_s += min(t - self.prev[0], self.gap_s)
        self.prev = (t, v)
        w = self.window
        while w and w[0][0] < t - self.win_s:
            w.popleft()
        while w and w[-1][1] >= v:
            w.pop()
        w.append((t, v))
        lo_t, lo = w[0]
        rise = v - lo
        if rise >= self.g.rise_mm and not self.in_event:
            self.in_event = True
            self.n_events += 1
            if len(self.events) < MAX_EVENTS:
                self.events.append({"time": iso_z(t), "from_mm": round(lo, 1), "to_mm": round(v, 1),
                                    "rise_mm": round(rise, 1), "minutes": round((t - lo_t) / 60, 1)})  # fmt: skip
        elif rise < self.g.rise_mm / 2:
            self.in_event = False

    def result(self) -> dict[str, Any]:
        g = self.g
        daily_min = [round(v, 1) if math.isfinite(v) else None for v in self.day_min]
        base = {
            "warning_level_mm": self.p.warning_level_mm,
            "readings": self.n,
            "daily_min_mm": daily_min,
            "daily_max_mm": [round(v, 1) if math.isfinite(v) else None for v in self.day_max],
        }
        if self.n == 0 or self.peak is None:
            return {"verdict": "insufficient_data", "reasons": ["no_data"], **base,
                    "minutes_above_warning": 0.0, "peak_mm": None, "peak_time": None,
                    "rise_events": [], "rise_events_count": 0, "baseline_slope_mm_per_30d": None,
                    "baseline_first_mm": None, "baseline_last_mm": None, "silt_suspected": False,
                    "first_problem": None, "_first_problem_ts": None}  # fmt: skip
        pts = [(i, v) for i, v in enumerate(self.day_min) if math.isfinite(v)]
        slope = first = last = None
        silt = False
        if len(pts) >= 2:
            n = len(pts)
            mx = sum(i for i, _ in pts) / n
            my = sum(v for _, v in pts) / n
            sxx = sum((i - mx) ** 2 for i, _ in pts)
            slope = sum((i - mx) * (v - my) for i, v in pts) / sxx
            first = my + slope * (pts[0][0] - mx)
            last = my + slope * (pts[-1][0] - mx)
            silt = n >= g.silt_min_days and slope * 30 >= g.silt_rise_mm_per_30d
        reasons = []
        problems = []
        if self.above_s > 0 or self.first_above is not None:
            reasons.append("above_warning")
            if self.first_above is not None:
                problems.append(self.first_above)
        if silt:
            reasons.append("silt_suspected")
            # Found once enough days were seen to call it (silt_min_days of data).
            idx = pts[min(len(pts), g.silt_min_days) - 1][0]
            problems.append(self.days[idx].end)
        first_problem = min(problems) if problems else None
        return {
            "verdict": "fail" if reasons else "pass",
            "reasons": reasons + (["rate_of_rise"] if self.n_events else []),
            **base,
            "minutes_above_warning": round(self.above_s / 60.0, 1),
            "peak_mm": round(self.peak[0], 1),
            "peak_time": iso_z(self.peak[1]),
            "rise_events": self.events,
            "rise_events_count": self.n_events,
            "baseline_slope_mm_per_30d": round(slope * 30, 1) if slope is not None else None,
            "baseline_first_mm": round(first, 1) if first is not None else None,
            "baseline_last_mm": round(last, 1) if last is not None else None,
            "silt_suspected": silt,
            "first_problem": iso_z(first_problem) if first_problem is not None else None,
            "_first_problem_ts": first_problem,
        }


def summarize(
    rows: Iterable[tuple[float, tuple[Any, ...]]],
    p: GulliesParams,
    period: Period,
    days: list[Day],
    s: ReportSettings,
) -> dict[str, Any]:
    """One gully's figures from its rows (time, (level_mm,)) in time order."""
    acc = GulliesSummary(p, period, days, s)
    for t, vals in rows:
        v = vals[0]
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            acc.feed(t, float(v))
    return acc.result()
