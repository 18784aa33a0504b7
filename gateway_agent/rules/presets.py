"""Presets: `[[rules]] preset = "co2"` expands to ready-made rules from UK guidance. Pure.

Sources for each default are in docs/rules.md. Common overrides: `name` (prefix of the rule
names, default the preset name), `select` (merged with the preset's: keys given replace the
preset's, except `tags_all`/`tags_none`, which add to them), `only` (suffixes to keep), `for` and
`clear_for` (threshold rules), and the action keys, copied to every rule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from gateway_agent.rules.table import Table, show

Generated = list[tuple[str, dict[str, Any]]]  # (suffix, rule table without name/select/actions)
Preset = Callable[[Table], tuple[dict[str, Any], Generated]]  # -> (default select, rules)

PRESETS: dict[str, Preset] = {}
ACTION_KEYS = ("command", "timeout", "downlink", "actions_on")


def preset(*names: str) -> Callable[[Preset], Preset]:
    def register(fn: Preset) -> Preset:
        for n in names:
            if n in PRESETS:
                raise RuntimeError(f"preset {n!r} registered twice")
            PRESETS[n] = fn
        return fn

    return register


def _num(t: Table, k: str, default: float, lo: float = 0.0, hi: float = 1e9) -> float:
    v = t.number(k, default, lo=lo, hi=hi)
    assert v is not None
    return v


def _dur(t: Table, k: str, default: str) -> Any:
    t.duration(k)  # validates
    return t.data.get(k, default)


def _tag(t: Table, k: str, default: str) -> str:
    v = t.string(k, default)
    assert v is not None
    return v


def _threshold(
    measurement: str, severity: str, for_: str, clear_for: str, **limits: float
) -> dict[str, Any]:
    return {
        "kind": "threshold",
        "severity": severity,
        "measurement": measurement,
        "for": for_,
        "clear_for": clear_for,
        **limits,
    }


@preset("co2")
def co2(t: Table) -> tuple[dict[str, Any], Generated]:
    """BB101 (2018) and SAMHE: >= 1500 ppm sustained warning, >= 2000 ppm critical, clear < 1000."""
    warning = _num(t, "warning", 1500)
    critical = _num(t, "critical", 2000)
    clear = _num(t, "clear", 1000)
    m = _tag(t, "measurement", "co2_ppm")
    if critical <= warning:
        raise t.fail("critical", f"must be above warning ({warning:g})")
    if clear > warning:
        raise t.fail("clear", f"must not be above warning ({warning:g})")
    return {"class": "co2"}, [
        ("warning", _threshold(m, "warning", "20m", "5m", above=warning, clear=clear)),
        ("critical", _threshold(m, "critical", "20m", "5m", above=critical, clear=clear)),
    ]


@preset("legionella")
def legionella(t: Table) -> tuple[dict[str, Any], Generated]:
    """HSE ACOP L8 and HSG274 Part 2: hot outlets >= 50 C within a minute, stored hot water
    >= 60 C, cold < 20 C within two minutes; little-used outlets flushed at least weekly."""
    hot_min = _num(t, "hot_min", 50, hi=100)
    storage_min = _num(t, "storage_min", 60, hi=100)
    cold_max = _num(t, "cold_max", 20, hi=100)
    m = _tag(t, "measurement", "temperature_c")
    hot, cold, store, outlet = (
        _tag(t, "hot_tag", "hot"),
        _tag(t, "cold_tag", "cold"),
        _tag(t, "storage_tag", "calorifier"),
        _tag(t, "outlet_tag", "outlet"),
    )
    flush_after = _dur(t, "flush_after", "7d")
    delta = _num(t, "flush_delta", 6.0, lo=0.1)
    return {"class": "legionella"}, [
        (
            "hot",
            {
                **_threshold(m, "warning", "1m", "5m", below=hot_min, clear=hot_min + 2),
                "select": {"tags_all": [hot]},
            },
        ),
        (
            "storage",
            {
                **_threshold(m, "critical", "15m", "15m", below=storage_min, clear=storage_min + 1),
                "select": {"tags_all": [store]},
            },
        ),
        (
            "cold",
            {
                **_threshold(m, "warning", "2m", "5m", above=cold_max, clear=cold_max - 1),
                "select": {"tags_all": [cold]},
            },
        ),
        (
            "flush",
            {
                "kind": "stale",
                "severity": "warning",
                "measurement": m,
                "for": flush_after,
                "delta": delta,
                "select": {"tags_all": [outlet]},
            },
        ),
    ]


@preset("bins", "bin")
def bins(t: Table) -> tuple[dict[str, Any], Generated]:
    """Operational defaults (no national standard): collection due >= 80 %, overflow >= 95 %,
    a sudden temperature rise (possible fire)."""
    due = _num(t, "due", 80, hi=100)
    overflow = _num(t, "overflow", 95, hi=100)
    if overflow <= due:
        raise t.fail("overflow", f"must be above due ({due:g})")
    rise = _num(t, "fire_rise", 15, lo=0.1)
    per = _dur(t, "fire_per", "30m")
    hot = _num(t, "fire_temperature", 70, lo=-50, hi=200)
    return {"class": "bin"}, [
        ("due", _threshold("fill_pct", "info", "30m", "10m", above=due, clear=min(50.0, due))),
        (
            "overflow",
            _threshold(
                "fill_pct", "warning", "30m", "10m", above=overflow, clear=min(80.0, overflow)
            ),
        ),
        (
            "fire",
            {
                "kind": "rate",
                "severity": "critical",
                "measurement": "temperature_c",
                "rise": rise,
                "per": per,
            },
        ),
        (
            "hot",
            _threshold("temperature_c", "critical", "0s", "30m", above=hot, clear=min(50.0, hot)),
        ),
    ]


@preset("gully", "gullies")
def gully(t: Table) -> tuple[dict[str, Any], Generated]:
    """Site-specific defaults: water level above `level` mm, or rising >= 100 mm per 15 min."""
    level = _num(t, "level", 500, lo=1)
    rise = _num(t, "rise", 100, lo=1)
    per = _dur(t, "per", "15m")
    return {"class": "gully"}, [
        (
            "level",
            _threshold(
                "level_mm", "critical", "5m", "15m", above=level, clear=round(level * 0.8, 3)
            ),
        ),
        (
            "rising",
            {
                "kind": "rate",
                "severity": "warning",
                "measurement": "level_mm",
                "rise": rise,
                "per": per,
            },
        ),
    ]


def _merge_select(
    base: dict[str, Any], rule_sel: dict[str, Any], user: dict[str, Any] | None
) -> dict[str, Any]:
    out = {**base, **rule_sel}
    for k, v in (user or {}).items():
        if k in ("tags_all", "tags_none") and k in out and isinstance(v, list | str):
            out[k] = [*out[k], *([v] if isinstance(v, str) else v)]
        else:
            out[k] = copy.deepcopy(v)
    return out


def expand(t: Table, presets: dict[str, Preset]) -> list[dict[str, Any]]:
    """The rule tables of one preset table (validated by the caller as ordinary rules)."""
    name = t.string("preset", required=True)
    assert name is not None
    if name not in presets:
        raise t.fail("preset", f"expected one of {', '.join(sorted(presets))}, got {show(name)}")
    prefix = t.string("name", name)
    user_sel = t.raw("select")
    if user_sel is not None and not isinstance(user_sel, dict):
        raise t.fail("select", f"expected a table, got {show(user_sel)}")
    only = t.strings("only")
    overrides = {k: t.raw(k) for k in ("for", "clear_for") if t.has(k)}
    for k in overrides:
        t.duration(k)
    actions = {k: copy.deepcopy(t.raw(k)) for k in ACTION_KEYS if t.has(k)}
    default_sel, generated = presets[name](t)
    t.done()
    suffixes = [s for s, _ in generated]
    for i, s in enumerate(only or ()):
        if s not in suffixes:
            raise t.fail(f"only[{i}]", f"expected one of {', '.join(suffixes)}, got {show(s)}")
    out = []
    for suffix, d in generated:
        if only and suffix not in only:
            continue
        d = dict(d)
        sel = _merge_select(default_sel, d.pop("select", {}), user_sel)
        if d["kind"] == "threshold":
            d.update(overrides)
        out.append({"name": f"{prefix}-{suffix}", **d, "select": sel, **actions})
    return out
