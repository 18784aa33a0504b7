"""Classroom air (DfE BB101 2018, SAMHE): per school day over occupied hours. Pure, streaming.

A reading holds until the next one (at most `max_gap_min`), so minutes and runs are
time-weighted; state is one small accumulator per day of the period.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway_agent.model import Device
from gateway_agent.reports.period import Day, DayCursor, Period, iso_z
from gateway_agent.reports.settings import Co2Criteria, ReportSettings, device_report_settings

KIND = "co2"
DEVICE_CLASS = "co2"


@dataclass(frozen=True, slots=True)
class Co2Params:
    ventilation: str
    criteria: Co2Criteria


def params(dev: Device, s: ReportSettings) -> Co2Params:
    ds = device_report_settings(dev.settings, f"devices[{dev.dev_eui.hex()}].settings")
    vent = ds.get("ventilation", s.co2.ventilation)
    return Co2Params(vent, s.co2.criteria[vent])


def fields(p: Co2Params) -> tuple[str, ...]:
    return ("co2_ppm",)


class _DayAcc:
    __slots__ = (
        "covered_s", "sum_vs", "max_v", "max_t", "above_s", "run_s", "longest_s",
        "longest_from", "last_end", "peak_fail_t",
    )  # fmt: skip

    def __init__(self, n: int) -> None:
        self.covered_s = 0.0
        self.sum_vs = 0.0
        self.max_v = -math.inf
        self.max_t = 0.0
        self.above_s = [0.0] * n
        self.run_s = [0.0] * n
        self.longest_s = [0.0] * n
        self.longest_from = [0.0] * n
        self.last_end = -math.inf
        self.peak_fail_t: float | None = None


def _mins(s: float) -> float:
    return round(s / 60.0, 1)


class Co2Summary:
    """Feed (time, co2_ppm) in time order; `result()` gives the device's figures."""

    def __init__(self, p: Co2Params, period: Period, days: list[Day], s: ReportSettings) -> None:
        self.p, self.s, self.days = p, s, days
        c = s.co2
        self.thresholds = tuple(sorted({*c.thresholds_ppm, p.criteria.peak_ppm}))
        self.peak_i = self.thresholds.index(p.criteria.peak_ppm)
        self.windows: list[tuple[float, float] | None] = [
            (d.at_wall_minute(c.start_min), d.at_wall_minute(c.end_min))
            if c.is_school_day(d.date)
            else None
            for d in days
        ]
        self.acc: list[_DayAcc | None] = [None] * len(days)
        self.cursor = DayCursor(days)
        self.gap_s = s.max_gap_min * 60.0
        self.prev: tuple[float, float] | None = None

    def feed(self, t: float, v: float) -> None:
        if self.prev is not None:
            self._hold(self.prev[0], min(t, self.prev[0] + self.gap_s), self.prev[1])
        self.prev = (t, v)

    def _hold(self, a: float, b: float, v: float) -> None:
        di = self.cursor.index(a)
        if di < 0:
            di = 0
        while 0 <= di < len(self.days) and self.days[di].start < b:
            w = self.windows[di]
            if w is not None:
                lo, hi = max(a, w[0]), min(b, w[1])
                if hi > lo:
                    self._segment(di, lo, hi, v)
            di += 1

    def _segment(self, di: int, lo: float, hi: float, v: float) -> None:
        acc = self.acc[di]
        if acc is None:
            acc = self.acc[di] = _DayAcc(len(self.thresholds))
        dur = hi - lo
        contiguous = lo - acc.last_end < 1.0
        acc.last_end = hi
        acc.covered_s += dur
        acc.sum_vs += v * dur
        if v > acc.max_v:
            acc.max_v, acc.max_t = v, lo
        crit = self.p.criteria
        for i, th in enumerate(self.thresholds):
            if v > th:
                acc.above_s[i] += dur
                if not contiguous:
                    acc.run_s[i] = 0.0
                acc.run_s[i] += dur
                if acc.run_s[i] > acc.longest_s[i]:
                    acc.longest_s[i] = acc.run_s[i]
                    acc.longest_from[i] = hi - acc.run_s[i]
                if (
                    i == self.peak_i
                    and acc.peak_fail_t is None
                    and acc.run_s[i] > crit.peak_max_minutes * 60.0
                ):
                    acc.peak_fail_t = hi - acc.run_s[i] + crit.peak_max_minutes * 60.0
            else:
                acc.run_s[i] = 0.0

    def result(self) -> dict[str, Any]:
        if self.prev is not None:
            self._hold(self.prev[0], self.prev[0] + self.gap_s, self.prev[1])
            self.prev = None
        c, crit = self.s.co2, self.p.criteria
        labels = [f"{th:g}" for th in self.thresholds]
        shown = [self.thresholds.index(th) for th in sorted(set(c.thresholds_ppm))]
        out_days: list[dict[str, Any]] = []
        counts = {"pass": 0, "fail": 0, "insufficient_data": 0}
        reasons: set[str] = set()
        first_problem: float | None = None
        tot_cov = tot_vs = 0.0
        tot_above = [0.0] * len(self.thresholds)
        longest = [0.0] * len(self.thresholds)
        max_v, max_t = -math.inf, 0.0
        school_days = 0
        for di, d in enumerate(self.days):
            w = self.windows[di]
            if w is None:
                continue
            school_days += 1
            acc = self.acc[di]
            win_s = w[1] - w[0]
            if acc is None or acc.covered_s <= 0:
                counts["insufficient_data"] += 1
                out_days.append({"date": d.date.isoformat(), "verdict": "insufficient_data",
                                 "coverage_pct": 0.0, "reasons": ["no_data"]})  # fmt: skip
                continue
            mean = acc.sum_vs / acc.covered_s
            cov = 100.0 * acc.covered_s / win_s
            day_reasons = []
            if cov < c.min_coverage_pct:
                verdict = "insufficient_data"
                day_reasons.append("low_coverage")
            else:
                if mean >= crit.mean_below_ppm:
                    day_reasons.append("daily_mean")
                    first_problem = _min(first_problem, w[1])
                if acc.longest_s[self.peak_i] > crit.peak_max_minutes * 60.0:
                    day_reasons.append("peak_run")
                    first_problem = _min(first_problem, acc.peak_fail_t)
                verdict = "fail" if day_reasons else "pass"
            counts[verdict] += 1
            if verdict == "fail":
                reasons.update(day_reasons)
            tot_cov += acc.covered_s
            tot_vs += acc.sum_vs
            if acc.max_v > max_v:
                max_v, max_t = acc.max_v, acc.max_t
            row: dict[str, Any] = {
                "date": d.date.isoformat(),
                "verdict": verdict,
                "reasons": day_reasons,
                "coverage_pct": round(cov, 1),
                "mean_ppm": round(mean, 1),
                "max_ppm": round(acc.max_v, 1),
                "max_time": iso_z(acc.max_t),
            }
            for i in shown:
                row[f"minutes_above_{labels[i]}"] = _mins(acc.above_s[i])
                row[f"longest_above_{labels[i]}_min"] = _mins(acc.longest_s[i])
                row[f"longest_above_{labels[i]}_from"] = (
                    iso_z(acc.longest_from[i]) if acc.longest_s[i] > 0 else None
                )
            for i in range(len(self.thresholds)):
                tot_above[i] += acc.above_s[i]
                longest[i] = max(longest[i], acc.longest_s[i])
            out_days.append(row)
        if counts["fail"]:
            verdict = "fail"
        elif counts["pass"]:
            verdict = "pass"
        else:
            verdict = "insufficient_data"
        res: dict[str, Any] = {
            "verdict": verdict,
            "reasons": sorted(reasons),
            "ventilation": self.p.ventilation,
            "criteria": {
                "mean_below_ppm": crit.mean_below_ppm,
                "peak_ppm": crit.peak_ppm,
                "peak_max_minutes": crit.peak_max_minutes,
            },
            "school_days": school_days,
            "days_pass": counts["pass"],
            "days_fail": counts["fail"],
            "days_insufficient_data": counts["insufficient_data"],
            "mean_ppm": round(tot_vs / tot_cov, 1) if tot_cov else None,
            "max_ppm": round(max_v, 1) if tot_cov else None,
            "max_time": iso_z(max_t) if tot_cov else None,
        }
        for i in shown:
            res[f"minutes_above_{labels[i]}"] = _mins(tot_above[i])
            res[f"longest_above_{labels[i]}_min"] = _mins(longest[i])
        fails = [d for d in out_days if d["verdict"] == "fail"]
        worst = max(
            fails or [d for d in out_days if "mean_ppm" in d] or [{}],
            key=lambda d: (
                d.get(f"longest_above_{labels[self.peak_i]}_min", 0),
                d.get("mean_ppm", 0),
            ),
        )
        res["worst_day"] = worst.get("date")
        res["days"] = out_days
        res["first_problem"] = iso_z(first_problem) if first_problem is not None else None
        res["_first_problem_ts"] = first_problem
        res["_rank"] = (counts["fail"], _mins(tot_above[shown[0]]) if shown else 0.0)
        return res


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def summarize(
    rows: Iterable[tuple[float, tuple[Any, ...]]],
    p: Co2Params,
    period: Period,
    days: list[Day],
    s: ReportSettings,
) -> dict[str, Any]:
    """One device's figures from its rows (time, (co2_ppm,)) in time order."""
    acc = Co2Summary(p, period, days, s)
    for t, vals in rows:
        v = vals[0]
        if _finite(v):
            acc.feed(t, float(v))
    return acc.result()


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def worst_rooms(entries: Sequence[Mapping[str, Any]], n: int) -> list[dict[str, Any]]:
    """The month's worst rooms: most failing days, then most minutes above the first threshold."""
    ranked = sorted(
        (e for e in entries if e.get("days_fail", 0) or e.get("verdict") == "fail"),
        key=lambda e: e["_rank"],
        reverse=True,
    )
    return [
        {
            "dev_eui": e["dev_eui"],
            "name": e["name"],
            "days_fail": e["days_fail"],
            "worst_day": e["worst_day"],
            "mean_ppm": e["mean_ppm"],
        }  # fmt: skip
        for e in ranked[:n]
    ]
