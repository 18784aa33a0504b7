"""Legionella monitoring log (HSE ACOP L8, HSG274 Part 2) per sentinel outlet. Pure, streaming.

Checks run per ISO week clipped to the period (a probe gives more than the monthly spot check
HSG274 asks for); flush events are read from steps in the temperature history.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway_agent.model import Device
from gateway_agent.reports.period import Day, DayCursor, Period, iso_z
from gateway_agent.reports.settings import ReportSettings, device_report_settings

KIND = "legionella"
DEVICE_CLASS = "legionella"
# How a check judges a week: "reach" needs one reading >= threshold; "below" needs every reading
# < threshold; "at_least" needs every reading >= threshold.
MODES = {"hot": "reach", "cold": "below", "flow": "at_least", "return": "at_least"}


@dataclass(frozen=True, slots=True)
class Check:
    name: str  # hot | cold | flow | return
    field: int  # index into the row's values
    threshold_c: float

    @property
    def mode(self) -> str:
        return MODES[self.name]


@dataclass(frozen=True, slots=True)
class LegionellaParams:
    outlet: str | None  # None: not configured -> insufficient_data
    healthcare: bool
    little_used: bool
    measurements: tuple[str, ...]
    checks: tuple[Check, ...]
    flush_sign: int  # +1 hot (a rise is a draw-off), -1 cold, 0 no flush detection


def params(dev: Device, s: ReportSettings) -> LegionellaParams:
    ds = device_report_settings(dev.settings, f"devices[{dev.dev_eui.hex()}].settings")
    L = s.legionella
    healthcare = bool(ds.get("healthcare", False)) or any(t in L.healthcare_tags for t in dev.tags)
    outlet = ds.get("outlet")
    probe = ds.get("probe_measurement", "temperature_c")
    ret = ds.get("return_measurement", "temperature_2_c")
    hot = L.hot_min_healthcare_c if healthcare else L.hot_min_c
    checks: tuple[Check, ...] = ()
    meas: tuple[str, ...] = (probe,)
    sign = 0
    if outlet == "hot":
        checks, sign = (Check("hot", 0, hot),), 1
    elif outlet == "cold":
        checks, sign = (Check("cold", 0, L.cold_max_c),), -1
    elif outlet == "calorifier_flow":
        checks = (Check("flow", 0, L.calorifier_flow_min_c),)
    elif outlet == "calorifier_return":
        checks = (Check("return", 0, L.calorifier_return_min_c),)
    elif outlet == "calorifier":
        meas = (probe, ret)
        checks = (
            Check("flow", 0, L.calorifier_flow_min_c),
            Check("return", 1, L.calorifier_return_min_c),
        )
    return LegionellaParams(
        outlet, healthcare, bool(ds.get("little_used", False)), meas, checks, sign
    )


def fields(p: LegionellaParams) -> tuple[str, ...]:
    return p.measurements


class _Week:
    __slots__ = ("n", "extreme", "violation", "flushes", "first_flush")

    def __init__(self, n_checks: int) -> None:
        self.n = [0] * n_checks
        self.extreme: list[tuple[float, float] | None] = [None] * n_checks
        self.violation: list[tuple[float, float] | None] = [None] * n_checks  # first, (v, t)
        self.flushes = 0
        self.first_flush: float | None = None


class LegionellaSummary:
    def __init__(
        self, p: LegionellaParams, period: Period, days: list[Day], s: ReportSettings
    ) -> None:
        self.p, self.s, self.days = p, s, days
        self.weeks_def = period.weeks()
        self.week_of_day = [0] * len(days)
        for wi, (_, a, b) in enumerate(self.weeks_def):
            for di in range(a, b + 1):
                self.week_of_day[di] = wi
        self.weeks = [_Week(len(p.checks)) for _ in self.weeks_def]
        self.day_min = [math.inf] * len(days)
        self.day_max = [-math.inf] * len(days)
        self.cursor = DayCursor(days)
        self.prev: tuple[float, float] | None = None  # field 0, for flushes
        self.last_flush = -math.inf
        self.window_s = s.legionella.flush_window_min * 60.0
        self.flush_delta = s.legionella.flush_delta_c

    def feed(self, t: float, vals: tuple[float | None, ...]) -> None:
        di = self.cursor.index(t)
        if not 0 <= di < len(self.days):
            return
        wk = self.weeks[self.week_of_day[di]]
        v0 = vals[0]
        if v0 is not None:
            self.day_min[di] = min(self.day_min[di], v0)
            self.day_max[di] = max(self.day_max[di], v0)
        for i, c in enumerate(self.p.checks):
            v = vals[c.field]
            if v is None:
                continue
            wk.n[i] += 1
            ext = wk.extreme[i]
            if c.mode == "at_least":
                if ext is None or v < ext[0]:
                    wk.extreme[i] = (v, t)
                bad = v < c.threshold_c
            else:
                if ext is None or v > ext[0]:
                    wk.extreme[i] = (v, t)
                bad = v >= c.threshold_c  # "reach": the evidence it passed; else a violation
            if bad and wk.violation[i] is None:
                wk.violation[i] = (v, t)
        if self.p.flush_sign and v0 is not None:
            if self.prev is not None and t - self.prev[0] <= self.window_s:
                step = (v0 - self.prev[1]) * self.p.flush_sign
                # One draw-off shows as several steps; count it once (refractory window).
                if step >= self.flush_delta and t - self.last_flush > self.window_s * 2:
                    self.last_flush = t
                    wk.flushes += 1
                    if wk.first_flush is None:
                        wk.first_flush = t
            self.prev = (t, v0)

    def result(self) -> dict[str, Any]:
        p = self.p
        no_data_days = [
            d.date.isoformat() for i, d in enumerate(self.days) if self.day_max[i] == -math.inf
        ]
        base: dict[str, Any] = {
            "outlet": p.outlet,
            "healthcare": p.healthcare,
            "little_used": p.little_used,
            "checks": [
                {"check": c.name, "threshold_c": c.threshold_c, "rule": c.mode} for c in p.checks
            ],
            "days_with_data": len(self.days) - len(no_data_days),
            "days_without_data": no_data_days,
            "daily_min_c": [_r(v) for v in self.day_min],
            "daily_max_c": [_r(v) for v in self.day_max],
        }
        if p.outlet is None:
            return {"verdict": "insufficient_data", "reasons": ["outlet_not_set"], **base,
                    "weeks": [], "flush_events": 0, "weeks_without_flush": [],
                    "evidence": None, "first_problem": None, "_first_problem_ts": None}  # fmt: skip
        weeks_out = []
        reasons: set[str] = set()
        any_fail = any_missing = False
        first_problem: float | None = None
        evidence: dict[str, Any] | None = None
        fail_evidence: dict[str, Any] | None = None
        no_flush: list[str] = []
        flush_total = 0
        for wi, (label, a, b) in enumerate(self.weeks_def):
            wk = self.weeks[wi]
            week_end = self.days[b].end
            checks_out: list[dict[str, Any]] = []
            week_fail = week_missing = False
            for i, c in enumerate(p.checks):
                if wk.n[i] == 0:
                    checks_out.append(
                        {"check": c.name, "verdict": "insufficient_data", "evidence": None}
                    )
                    week_missing = True
                    continue
                ext, vio = wk.extreme[i], wk.violation[i]
                when: float | None
                if c.mode == "reach":
                    ok = vio is not None
                    ev, when = (vio, vio[1]) if vio else (ext, week_end)
                else:
                    ok = vio is None
                    ev, when = (ext, None) if ok else (vio, vio[1] if vio else None)
                assert ev is not None
                e = {"value_c": _r(ev[0]), "time": iso_z(ev[1])}
                checks_out.append(
                    {"check": c.name, "verdict": "pass" if ok else "fail", "evidence": e}
                )
                if not ok:
                    week_fail = True
                    reasons.add(
                        f"{c.name}_{'not_reached' if c.mode == 'reach' else 'out_of_range'}"
                    )
                    first_problem = (
                        when
                        if first_problem is None or (when and when < first_problem)
                        else first_problem
                    )
                    if fail_evidence is None:
                        fail_evidence = {"check": c.name, "week": label, **e}
                elif evidence is None:
                    evidence = {"check": c.name, "week": label, **e}
            flush_total += wk.flushes
            flush_ok = True
            if p.little_used and any(wk.n) and wk.flushes == 0:  # n: counts, never negative
                flush_ok = False
                week_fail = True
                no_flush.append(label)
                reasons.add("no_weekly_flush")
                first_problem = week_end if first_problem is None else min(first_problem, week_end)
            any_fail |= week_fail
            any_missing |= week_missing
            weeks_out.append({
                "week": label,
                "from": self.days[a].date.isoformat(),
                "to": self.days[b].date.isoformat(),
                "verdict": "fail" if week_fail else ("insufficient_data" if week_missing else "pass"),
                "checks": checks_out,
                "flushes": wk.flushes,
                "first_flush": iso_z(wk.first_flush) if wk.first_flush is not None else None,
                "flush_ok": flush_ok,
            })  # fmt: skip
        verdict = "fail" if any_fail else ("insufficient_data" if any_missing else "pass")
        if any_missing and not any_fail:
            reasons.add("week_without_data")
        return {
            "verdict": verdict,
            "reasons": sorted(reasons),
            **base,
            "weeks": weeks_out,
            "flush_events": flush_total,
            "weeks_without_flush": no_flush if p.little_used else [],
            "evidence": fail_evidence if verdict == "fail" else evidence,
            "first_problem": iso_z(first_problem) if first_problem is not None else None,
            "_first_problem_ts": first_problem,
        }


def _r(v: float) -> float | None:
    return round(v, 2) if math.isfinite(v) else None


def summarize(
    rows: Iterable[tuple[float, tuple[Any, ...]]],
    p: LegionellaParams,
    period: Period,
    days: list[Day],
    s: ReportSettings,
) -> dict[str, Any]:
    """One outlet's log from its rows (time, (probe_c[, return_c])) in time order."""
    acc = LegionellaSummary(p, period, days, s)
    for t, vals in rows:
        clean = tuple(float(v) if _finite(v) else None for v in vals)
        if any(v is not None for v in clean):
            acc.feed(t, clean)
    return acc.result()


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
