"""`[reports]` TOML table -> one frozen `ReportSettings` tree; per-device report settings. Pure.

`load_report_settings(table)` rejects unknown keys and raises ConfigError naming the key path
(`reports.co2.start: expected "HH:MM"`). Defaults and their sources: docs/reports.md.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway_agent.errors import ConfigError
from gateway_agent.tomltable import TomlTable, type_name
from gateway_agent.tomltable import c_int as _int
from gateway_agent.tomltable import c_num as _num

VENTILATION = ("natural", "mechanical", "hybrid")
OUTLETS = ("hot", "cold", "calorifier_flow", "calorifier_return", "calorifier")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONES = ("Europe/London", "UTC")  # gateway_agent.rules.localtime: no tz database needed


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True, slots=True)
class ValueFigures:
    """What a manual check costs, for the report's "value" section (our defaults, docs)."""

    minutes_per_check: float
    checks_per_month: float
    visit_interval_days: float  # how often a person would otherwise look


@dataclass(frozen=True, slots=True)
class LegionellaSettings:
    hot_min_c: float = 50.0  # HSG274 Part 2: hot sentinel outlets reach >= 50 C within 1 min
    hot_min_healthcare_c: float = 55.0  # HSG274 Part 2 / HTM 04-01: healthcare premises
    cold_max_c: float = 20.0  # HSG274 Part 2: cold outlets below 20 C within 2 min
    calorifier_flow_min_c: float = 60.0  # HSG274 Part 2: calorifier flow >= 60 C
    calorifier_return_min_c: float = 50.0  # HSG274 Part 2: calorifier return >= 50 C
    flush_delta_c: float = 5.0  # ours: a step this size at the probe is water being drawn
    flush_window_min: float = 30.0  # ... between readings at most this far apart
    healthcare_tags: tuple[str, ...] = ()  # devices with one of these tags are healthcare sites
    value: ValueFigures = field(default_factory=lambda: ValueFigures(15.0, 1.0, 30.0))


@dataclass(frozen=True, slots=True)
class Co2Criteria:
    """BB101 2018 daily criteria for one ventilation type."""

    mean_below_ppm: float
    peak_ppm: float
    peak_max_minutes: float


@dataclass(frozen=True, slots=True)
class Co2Settings:
    start_min: int = 9 * 60  # occupied hours, local wall clock (minutes after midnight)
    end_min: int = 15 * 60 + 30
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    holidays: tuple[tuple[dt.date, dt.date], ...] = ()  # inclusive ranges
    ventilation: str = "natural"  # default when a device does not say
    thresholds_ppm: tuple[float, float] = (1500.0, 2000.0)  # runs and minutes reported above these
    criteria: Mapping[str, Co2Criteria] = field(
        default_factory=lambda: {
            "natural": Co2Criteria(1500.0, 2000.0, 20.0),
            "mechanical": Co2Criteria(1000.0, 1500.0, 20.0),
            "hybrid": Co2Criteria(1500.0, 2000.0, 20.0),
        }
    )
    min_coverage_pct: float = 50.0  # ours: a day with less is "insufficient_data"
    worst_rooms: int = 5
    value: ValueFigures = field(default_factory=lambda: ValueFigures(10.0, 4.0, 7.0))

    def is_school_day(self, day: dt.date) -> bool:
        if day.weekday() not in self.weekdays:
            return False
        return not any(a <= day <= b for a, b in self.holidays)


@dataclass(frozen=True, slots=True)
class BinsSettings:
    overflow_pct: float = 95.0  # issue #18: "hours spent above 95 % (overflowing)"
    wasted_below_pct: float = 50.0  # issue #18: "collections made below 50 % (wasted trips)"
    emptied_drop_pct: float = 25.0  # ours: a fall of this many points is an emptying
    target_fill_pct: float = 85.0  # ours: the fill a suggested interval aims to collect at
    max_overflow_hours: float = 0.0
    max_wasted_collections: int = 0
    value: ValueFigures = field(default_factory=lambda: ValueFigures(5.0, 4.0, 7.0))


@dataclass(frozen=True, slots=True)
class GulliesSettings:
    warning_level_mm: float = 300.0  # ours, a placeholder: set it per device
    rise_mm: float = 100.0  # ours: a rise this large ...
    rise_window_min: float = 60.0  # ... within this time is a rate-of-rise event
    silt_rise_mm_per_30d: float = 50.0  # ours: dry-weather baseline creeping up this fast
    silt_min_days: int = 7
    value: ValueFigures = field(default_factory=lambda: ValueFigures(20.0, 1.0, 90.0))


@dataclass(frozen=True, slots=True)
class ReportSettings:
    timezone: str = "Europe/London"
    max_gap_min: float = 60.0  # a reading counts until the next one, for at most this long
    currency: str = "£"
    cost_per_hour: float = 30.0  # ours: an officer's loaded hourly cost, set your own
    legionella: LegionellaSettings = field(default_factory=LegionellaSettings)
    co2: Co2Settings = field(default_factory=Co2Settings)
    bins: BinsSettings = field(default_factory=BinsSettings)
    gullies: GulliesSettings = field(default_factory=GulliesSettings)


# --------------------------------------------------------------------------- converters


def _str(v: Any, p: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(p, f"expected a non-empty string, got {type_name(v)}")
    return v


def _bool(v: Any, p: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(p, f"expected true or false, got {type_name(v)}")
    return v


def _choice(*choices: str) -> Callable[[Any, str], str]:
    def conv(v: Any, p: str) -> str:
        if not isinstance(v, str) or v not in choices:
            raise ConfigError(p, f"expected one of {' | '.join(choices)}, got {type_name(v)}")
        return v

    return conv


def _list(v: Any, p: str) -> list[Any]:
    if not isinstance(v, list):
        raise ConfigError(p, f"expected an array, got {type_name(v)}")
    return v


def _no_items() -> list[Any]:
    """An absent array key's default, typed so that `TomlTable.get` infers list[Any]."""
    return []


def _hhmm(v: Any, p: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", v) if isinstance(v, str) else None
    if m is None or int(m[1]) > 24 or int(m[2]) > 59 or int(m[1]) * 60 + int(m[2]) > 1440:
        raise ConfigError(p, f'expected "HH:MM", got {type_name(v)}')
    return int(m[1]) * 60 + int(m[2])


def parse_date(v: Any, p: str) -> dt.date:
    """An ISO date `YYYY-MM-DD` (TOML dates are accepted as they are)."""
    if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
        return v
    try:
        return dt.date.fromisoformat(v) if isinstance(v, str) else dt.date.fromisoformat("x")
    except ValueError:
        raise ConfigError(p, f'expected a date "YYYY-MM-DD", got {type_name(v)}') from None


def _holiday(v: Any, p: str) -> tuple[dt.date, dt.date]:
    """`"2026-02-16"`, or an inclusive range `"2026-02-16..2026-02-20"`."""
    if isinstance(v, str) and ".." in v:
        a, _, b = v.partition("..")
        first, last = parse_date(a.strip(), p), parse_date(b.strip(), p)
        if last < first:
            raise ConfigError(p, "the range ends before it starts")
        return first, last
    d = parse_date(v, p)
    return d, d


def _value(t: TomlTable, default: ValueFigures) -> ValueFigures:
    if not t.has("value"):
        t.seen.add("value")
        return default
    v = TomlTable(t.data["value"], t.key("value"))
    t.seen.add("value")
    out = ValueFigures(
        minutes_per_check=v.get("minutes_per_check", _num(0, 10_000), default.minutes_per_check),
        checks_per_month=v.get("checks_per_month", _num(0, 10_000), default.checks_per_month),
        visit_interval_days=v.get(
            "visit_interval_days", _num(1, 3660), default.visit_interval_days
        ),
    )
    v.done()
    return out


def _sub(root: TomlTable, name: str) -> TomlTable:
    root.seen.add(name)
    return TomlTable(root.data.get(name, {}), root.key(name))


# --------------------------------------------------------------------------- sections


def _legionella(t: TomlTable) -> LegionellaSettings:
    d = LegionellaSettings()
    out = LegionellaSettings(
        hot_min_c=t.get("hot_min_c", _num(0, 100), d.hot_min_c),
        hot_min_healthcare_c=t.get("hot_min_healthcare_c", _num(0, 100), d.hot_min_healthcare_c),
        cold_max_c=t.get("cold_max_c", _num(0, 100), d.cold_max_c),
        calorifier_flow_min_c=t.get("calorifier_flow_min_c", _num(0, 100), d.calorifier_flow_min_c),
        calorifier_return_min_c=t.get(
            "calorifier_return_min_c", _num(0, 100), d.calorifier_return_min_c
        ),
        flush_delta_c=t.get("flush_delta_c", _num(0.1, 100), d.flush_delta_c),
        flush_window_min=t.get("flush_window_min", _num(1, 1440), d.flush_window_min),
        healthcare_tags=tuple(
            _str(x, f"{t.key('healthcare_tags')}[{i}]")
            for i, x in enumerate(t.get("healthcare_tags", _list, _no_items()))
        ),
        value=_value(t, d.value),
    )
    t.done()
    return out


def _criteria(t: TomlTable, defaults: Mapping[str, Co2Criteria]) -> dict[str, Co2Criteria]:
    out = dict(defaults)
    if not t.has("criteria"):
        t.seen.add("criteria")
        return out
    c = _sub(t, "criteria")
    for vent in VENTILATION:
        if not c.has(vent):
            c.seen.add(vent)
            continue
        v = _sub(c, vent)
        base = defaults[vent]
        out[vent] = Co2Criteria(
            mean_below_ppm=v.get("mean_below_ppm", _num(300, 10_000), base.mean_below_ppm),
            peak_ppm=v.get("peak_ppm", _num(300, 10_000), base.peak_ppm),
            peak_max_minutes=v.get("peak_max_minutes", _num(0, 1440), base.peak_max_minutes),
        )
        v.done()
    c.done()
    return out


def _co2(t: TomlTable) -> Co2Settings:
    d = Co2Settings()
    start = t.get("start", _hhmm, d.start_min)
    end = t.get("end", _hhmm, d.end_min)
    if end <= start:
        raise ConfigError(t.key("end"), "must be later than start")
    days = t.get("weekdays", _list, list(WEEKDAYS[i] for i in d.weekdays))
    weekdays = tuple(
        WEEKDAYS.index(_choice(*WEEKDAYS)(x, f"{t.key('weekdays')}[{i}]"))
        for i, x in enumerate(days)
    )
    hol = t.get("holidays", _list, _no_items())
    thresholds = t.get("thresholds_ppm", _list, list(d.thresholds_ppm))
    if len(thresholds) != 2:
        raise ConfigError(t.key("thresholds_ppm"), "expected two numbers, e.g. [1500, 2000]")
    th = tuple(
        _num(300, 10_000)(x, f"{t.key('thresholds_ppm')}[{i}]") for i, x in enumerate(thresholds)
    )
    out = Co2Settings(
        start_min=start,
        end_min=end,
        weekdays=tuple(sorted(set(weekdays))),
        holidays=tuple(_holiday(x, f"{t.key('holidays')}[{i}]") for i, x in enumerate(hol)),
        ventilation=t.get("ventilation", _choice(*VENTILATION), d.ventilation),
        thresholds_ppm=(th[0], th[1]),
        criteria=_criteria(t, d.criteria),
        min_coverage_pct=t.get("min_coverage_pct", _num(0, 100), d.min_coverage_pct),
        worst_rooms=t.get("worst_rooms", _int(0, 1000), d.worst_rooms),
        value=_value(t, d.value),
    )
    t.done()
    return out


def _bins(t: TomlTable) -> BinsSettings:
    d = BinsSettings()
    out = BinsSettings(
        overflow_pct=t.get("overflow_pct", _num(0, 100), d.overflow_pct),
        wasted_below_pct=t.get("wasted_below_pct", _num(0, 100), d.wasted_below_pct),
        emptied_drop_pct=t.get("emptied_drop_pct", _num(1, 100), d.emptied_drop_pct),
        target_fill_pct=t.get("target_fill_pct", _num(1, 100), d.target_fill_pct),
        max_overflow_hours=t.get("max_overflow_hours", _num(0, 100_000), d.max_overflow_hours),
        max_wasted_collections=t.get(
            "max_wasted_collections", _int(0, 100_000), d.max_wasted_collections
        ),
        value=_value(t, d.value),
    )
    t.done()
    return out


def _gullies(t: TomlTable) -> GulliesSettings:
    d = GulliesSettings()
    out = GulliesSettings(
        warning_level_mm=t.get("warning_level_mm", _num(0, 100_000), d.warning_level_mm),
        rise_mm=t.get("rise_mm", _num(1, 100_000), d.rise_mm),
        rise_window_min=t.get("rise_window_min", _num(1, 1440), d.rise_window_min),
        silt_rise_mm_per_30d=t.get(
            "silt_rise_mm_per_30d", _num(0.1, 100_000), d.silt_rise_mm_per_30d
        ),
        silt_min_days=t.get("silt_min_days", _int(2, 366), d.silt_min_days),
        value=_value(t, d.value),
    )
    t.done()
    return out


def load_report_settings(table: Mapping[str, Any] | None, path: str = "reports") -> ReportSettings:
    """The `[reports]` table (None or {} for every default). Raises ConfigError naming the key."""
    root = TomlTable(dict(table or {}), path)
    d = ReportSettings()
    out = ReportSettings(
        timezone=root.get("timezone", _choice(*ZONES), d.timezone),
        max_gap_min=root.get("max_gap_min", _num(1, 1440), d.max_gap_min),
        currency=root.get("currency", _str, d.currency),
        cost_per_hour=root.get("cost_per_hour", _num(0, 100_000), d.cost_per_hour),
        legionella=_legionella(_sub(root, "legionella")),
        co2=_co2(_sub(root, "co2")),
        bins=_bins(_sub(root, "bins")),
        gullies=_gullies(_sub(root, "gullies")),
    )
    root.done()
    return out


# --------------------------------------------------------------------------- per device

# The keys a device's `settings` mapping may carry for the reports (docs/reports.md).
DEVICE_KEYS: dict[str, Callable[[Any, str], Any]] = {
    "outlet": _choice(*OUTLETS),  # legionella: which check the probe evidences
    "healthcare": _bool,  # legionella: 55 C hot outlets
    "little_used": _bool,  # legionella: weekly flushing is required
    "probe_measurement": _str,  # legionella: default temperature_c
    "return_measurement": _str,  # legionella "calorifier": default temperature_2_c
    "ventilation": _choice(*VENTILATION),  # co2
    "warning_level_mm": _num(0, 100_000),  # gullies
}


def device_report_settings(settings: Mapping[str, Any], key_path: str) -> dict[str, Any]:
    """The report keys of a device's settings, validated (other keys belong to the decoders).

    Raises ConfigError naming `key_path.key`. The lead may call it when loading devices.toml.
    """
    return {
        k: conv(settings[k], f"{key_path}.{k}") for k, conv in DEVICE_KEYS.items() if k in settings
    }
