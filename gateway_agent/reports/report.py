"""One report object per run: select devices, summarise each one's row stream, add the value
section. Pure: rows come from a callable (source.py reads SQLite; tests may pass lists)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gateway_agent.errors import ConfigError
from gateway_agent.model import Device
from gateway_agent.reports import bins, co2, gullies, legionella
from gateway_agent.reports.period import Period, iso_z
from gateway_agent.reports.settings import ReportSettings, ValueFigures

Rows = Iterable[tuple[float, tuple[Any, ...]]]
RowsFor = Callable[[Device, tuple[str, ...]], Rows]


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    device_class: str
    params: Callable[[Device, ReportSettings], Any]
    fields: Callable[[Any], tuple[str, ...]]
    summarize: Callable[..., dict[str, Any]]


KINDS: dict[str, Kind] = {
    m.KIND: Kind(m.KIND, m.DEVICE_CLASS, m.params, m.fields, m.summarize)
    for m in (legionella, co2, bins, gullies)
}


@dataclass(frozen=True, slots=True)
class Selector:
    """Which devices: explicit DevEUIs (any class), else the kind's class filtered by tags."""

    dev_euis: tuple[bytes, ...] = ()
    tags: tuple[str, ...] = ()
    any_class: bool = False  # every device, whatever its class (benchmarks, odd fleets)


def select_devices(kind: str, devices: Sequence[Device], sel: Selector) -> list[Device]:
    k = _kind(kind)
    if sel.dev_euis:
        want = set(sel.dev_euis)
        out = [d for d in devices if d.dev_eui in want]
    else:
        out = [d for d in devices if sel.any_class or d.device_class == k.device_class]
    if sel.tags:
        out = [d for d in out if any(t in d.tags for t in sel.tags)]
    return sorted(out, key=lambda d: d.dev_eui)


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ConfigError("kind", f'expected one of {" | ".join(KINDS)}, got "{kind}"')
    return KINDS[kind]


def kind_settings(kind: str, s: ReportSettings) -> Any:
    return getattr(s, kind)


# No sensor reads beyond this magnitude; a value past it (a codec bug, a corrupt row) is left out
# of the sums as missing, so one bad row cannot turn a month's figures into inf or an overflow.
PLAUSIBLE = 1e9


def _implausible(v: Any) -> bool:
    c = v.__class__
    return (c is float or c is int) and not -PLAUSIBLE <= v <= PLAUSIBLE  # NaN fails too


def _plausible(rows: Rows) -> Iterator[tuple[float, tuple[Any, ...]]]:
    for t, vals in rows:
        for v in vals:
            if _implausible(v):
                yield t, tuple(None if _implausible(x) else x for x in vals)
                break
        else:
            yield t, vals


def build_report(
    kind: str,
    period: Period,
    devices: Sequence[Device],
    rows_for: RowsFor,
    settings: ReportSettings,
) -> dict[str, Any]:
    """The report object (docs/reports.md). `devices` are already selected; `rows_for(device,
    fields)` yields (time, values aligned with fields) in time order within the period."""
    k = _kind(kind)
    days = period.days()
    entries: list[dict[str, Any]] = []
    for dev in devices:
        p = k.params(dev, settings)
        fig = k.summarize(_plausible(rows_for(dev, k.fields(p))), p, period, days, settings)
        entries.append(
            {"dev_eui": dev.dev_eui.hex(), "name": dev.name, "tags": list(dev.tags), **fig}
        )
    counts = {
        v: sum(e["verdict"] == v for e in entries) for v in ("pass", "fail", "insufficient_data")
    }
    report: dict[str, Any] = {
        "kind": kind,
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "timezone": period.zone,
        "summary": {"devices": len(entries), **counts},
        "settings": _settings_view(kind, settings),
    }
    if kind == "co2":
        report["worst_rooms"] = co2.worst_rooms(entries, settings.co2.worst_rooms)
    report["value"] = value_section(kind, entries, period, settings)
    report["devices"] = [{k2: v for k2, v in e.items() if not k2.startswith("_")} for e in entries]
    return report


def _settings_view(kind: str, s: ReportSettings) -> dict[str, Any]:
    ks = asdict(kind_settings(kind, s))
    if kind == "co2":
        ks["holidays"] = [f"{a.isoformat()}..{b.isoformat()}" for a, b in s.co2.holidays]
        ks["start"] = f"{s.co2.start_min // 60:02d}:{s.co2.start_min % 60:02d}"
        ks["end"] = f"{s.co2.end_min // 60:02d}:{s.co2.end_min % 60:02d}"
        ks["weekdays"] = [
            ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[d] for d in s.co2.weekdays
        ]
        del ks["start_min"], ks["end_min"]
        ks["criteria"] = {v: asdict(c) for v, c in s.co2.criteria.items()}
    if "healthcare_tags" in ks:
        ks["healthcare_tags"] = list(ks["healthcare_tags"])
    if "thresholds_ppm" in ks:
        ks["thresholds_ppm"] = list(ks["thresholds_ppm"])
    return {"max_gap_min": s.max_gap_min, **ks}


def _has_data(e: dict[str, Any]) -> bool:
    for key in ("readings", "days_with_data"):
        if key in e:
            return bool(e[key])
    return (
        bool(e.get("school_days", 0) > e.get("days_insufficient_data", 0))
        or e["verdict"] != "insufficient_data"
    )


def value_section(
    kind: str, entries: list[dict[str, Any]], period: Period, s: ReportSettings
) -> dict[str, Any]:
    """Visits replaced and problems found before the next visit. Every sum is shown in `sums`."""
    vf: ValueFigures = kind_settings(kind, s).value
    cur = s.currency
    n = sum(_has_data(e) for e in entries)
    months = round(period.months, 2)
    checks = round(n * vf.checks_per_month * months, 1)
    minutes = round(checks * vf.minutes_per_check, 1)
    cost = round(minutes / 60.0 * s.cost_per_hour, 2)
    interval = vf.visit_interval_days * 86400.0
    earlier = []
    for e in entries:
        ts = e.get("_first_problem_ts")
        if ts is None:
            continue
        # Manual visits every `visit_interval_days` from the start of the period.
        k = max(1, math.ceil((ts - period.start) / interval))
        visit = period.start + k * interval
        earlier.append({"dev_eui": e["dev_eui"], "name": e["name"], "found": iso_z(ts),
                        "next_visit": iso_z(visit), "days_earlier": round((visit - ts) / 86400.0, 1)})  # fmt: skip
    days_total = round(sum(x["days_earlier"] for x in earlier), 1)
    sums = [
        f"{n} devices x {vf.checks_per_month:g} checks/month x {months:g} months = {checks:g} manual checks",
        f"{checks:g} checks x {vf.minutes_per_check:g} min = {minutes:g} min ({minutes / 60:.1f} h)",
        f"{minutes / 60:.2f} h x {cur}{s.cost_per_hour:.2f}/h = {cur}{cost:.2f}",
        f"{len(earlier)} problems found, {days_total:g} days in total before a visit every "
        f"{vf.visit_interval_days:g} days would have found them",
    ]
    out: dict[str, Any] = {
        "devices_monitored": n,
        "checks_per_month": vf.checks_per_month,
        "months": months,
        "manual_checks_replaced": checks,
        "minutes_per_check": vf.minutes_per_check,
        "minutes_saved": minutes,
        "cost_per_hour": s.cost_per_hour,
        "currency": cur,
        "cost_saved": cost,
        "visit_interval_days": vf.visit_interval_days,
        "problems_found": len(earlier),
        "problems_found_earlier": earlier,
        "days_earlier_total": days_total,
    }
    if kind == "bins":
        wasted = sum(e.get("wasted_collections", 0) for e in entries)
        out["wasted_collections"] = wasted
        sums.append(
            f"{wasted} collections made below {s.bins.wasted_below_pct:g} % full (trips a sensor-led round could skip)"
        )
    out["sums"] = sums
    return out
