"""Per-device post-processing: `field_map` and the derived measurements of FORMATS.md section 3.
Pure. Settings come from the device's config table; `check_settings` validates them up front."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from decoders.types import NORMALIZED_MEASUREMENTS, Decoded, is_number
from gateway_agent.errors import ConfigError

# 1 bar of fresh water = 100000 / (1000 x 9.80665) m; FORMATS.md section 3 fixes it at 10197.16.
MM_PER_BAR = 10197.16
# Flags that say the distance is not a measurement of the target (FORMATS.md 3, 6.9, 6.12).
BLOCKING_FLAGS = ("tilt", "invalid_reading", "sensor_absent")
NUMERIC_SETTINGS = (
    "empty_distance_mm",
    "full_distance_mm",
    "mount_height_mm",
    "pressure_offset_bar",
    "water_density_kg_m3",
    "pressure_min_bar",
    "pressure_max_bar",
)


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """One `field_map` entry: codec output path -> normalized name, value x scale + offset."""

    path: tuple[str, ...]
    name: str
    scale: float = 1.0
    offset: float = 0.0


def _field_map(raw: Any, key_path: str) -> tuple[FieldMapping, ...]:
    if not isinstance(raw, Mapping):
        raise ConfigError(key_path, "expected a table of codec field -> normalized name")
    out = []
    for source, target in raw.items():
        where = f"{key_path}.{source}"
        if isinstance(target, str):
            name, scale, offset = target, 1.0, 0.0
        elif isinstance(target, Mapping):
            unknown = set(target) - {"name", "scale", "offset"}
            if unknown:
                raise ConfigError(where, f"unknown key(s) {', '.join(sorted(unknown))}")
            name = target.get("name", "")
            scale, offset = target.get("scale", 1.0), target.get("offset", 0.0)
            if not is_number(scale) or not is_number(offset):
                raise ConfigError(where, "scale and offset must be numbers")
        else:
            raise ConfigError(where, "expected a name or {name, scale, offset}")
        if name not in NORMALIZED_MEASUREMENTS:
            raise ConfigError(where, f"{name!r} is not a normalized measurement name")
        if not str(source) or any(not p for p in str(source).split(".")):
            raise ConfigError(where, "empty path segment")
        out.append(FieldMapping(tuple(str(source).split(".")), name, float(scale), float(offset)))
    return tuple(out)


def check_settings(settings: Mapping[str, Any], key_path: str = "settings") -> None:
    """Validate the keys this package reads; raises ConfigError naming the key path."""
    for key in NUMERIC_SETTINGS:
        if key in settings and not is_number(settings[key]):
            raise ConfigError(f"{key_path}.{key}", "must be a number")
    if ("empty_distance_mm" in settings) != ("full_distance_mm" in settings):
        raise ConfigError(key_path, "empty_distance_mm and full_distance_mm go together")
    if "empty_distance_mm" in settings and (
        settings["empty_distance_mm"] <= settings["full_distance_mm"]
    ):
        raise ConfigError(f"{key_path}.empty_distance_mm", "must be greater than full_distance_mm")
    density = settings.get("water_density_kg_m3", 1000)
    if density <= 0:
        raise ConfigError(f"{key_path}.water_density_kg_m3", "must be positive")
    if "field_map" in settings:
        _field_map(settings["field_map"], f"{key_path}.field_map")
    if "ds18b20_fitted" in settings and not isinstance(settings["ds18b20_fitted"], bool):
        raise ConfigError(f"{key_path}.ds18b20_fitted", "must be true or false")


def lookup(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """Follow a dotted path through mappings and sequences; None when absent."""
    cur: Any = obj
    for part in path:
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, tuple | list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


_FIELD_MAPS: dict[int, tuple[Any, tuple[FieldMapping, ...]]] = {}


def _parsed_field_map(raw: Any) -> tuple[FieldMapping, ...]:
    """`_field_map`, parsed once per settings object (a device's settings are immutable)."""
    hit = _FIELD_MAPS.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    parsed = _field_map(raw, "settings.field_map")
    if len(_FIELD_MAPS) > 100_000:
        _FIELD_MAPS.clear()
    _FIELD_MAPS[id(raw)] = (raw, parsed)  # holds `raw`, so its id cannot be reused meanwhile
    return parsed


def apply_field_map(decoded: Decoded, settings: Mapping[str, Any]) -> Decoded:
    if "field_map" not in settings:
        return decoded
    measurements = dict(decoded.measurements)
    extras = dict(decoded.extras)
    warnings = list(decoded.warnings)
    for m in _parsed_field_map(settings["field_map"]):
        value = lookup(decoded.object, m.path)
        if value is None and len(m.path) > 1 and m.path[0] == "data":
            value = lookup(decoded.object, m.path[1:])  # "data.x" also names a TTN data field
        if value is None:
            continue
        if not is_number(value):
            warnings.append(f"field_map {'.'.join(m.path)}: not a number")
            continue
        measurements[m.name] = (
            value * m.scale + m.offset if (m.scale, m.offset) != (1, 0) else value
        )
        extras.pop("_".join(m.path), None)
        if m.path[0] == "data":
            extras.pop("_".join(m.path[1:]), None)
    return replace(decoded, measurements=measurements, extras=extras, warnings=tuple(warnings))


def _blocked(flags: Mapping[str, Any], values: Mapping[str, Any]) -> bool:
    return (
        any(flags.get(f) is True for f in BLOCKING_FLAGS) or values.get("valid_samples_count") == 0
    )


def derive_values(values: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, float]:
    """New measurements from `values` (measurements + extras + flags merged), FORMATS.md 3."""
    if _blocked(values, values):
        return {}
    out: dict[str, float] = {}
    distance = values.get("distance_mm")
    if is_number(distance):
        if "empty_distance_mm" in settings and "full_distance_mm" in settings:
            empty, full = settings["empty_distance_mm"], settings["full_distance_mm"]
            fill = 100 * (empty - distance) / (empty - full)
            out["fill_pct"] = round(min(100.0, max(0.0, fill)), 1)
        if "mount_height_mm" in settings and "level_mm" not in values:
            out["level_mm"] = max(0, settings["mount_height_mm"] - distance)
    pressure = values.get("pressure_bar")
    if is_number(pressure) and "level_mm" not in values:
        offset = settings.get("pressure_offset_bar", 0)
        density = settings.get("water_density_kg_m3", 1000)
        level = (pressure - offset) * MM_PER_BAR
        if density != 1000:
            level = level * 1000 / density
        out["level_mm"] = max(0.0, level)
    return out


_SOURCES = ("distance_mm", "pressure_bar")  # what derive_values reads besides flags


def apply_derived(decoded: Decoded, settings: Mapping[str, Any]) -> Decoded:
    """Add fill_pct / level_mm to the live values and to each history record."""
    m, x = decoded.measurements, decoded.extras
    if not decoded.history and (
        "distance_mm" not in m
        and "pressure_bar" not in m
        and "distance_mm" not in x
        and "pressure_bar" not in x
    ):
        return decoded  # the hot path: nothing to derive from (_SOURCES, spelt out: no genexpr)
    live = {**decoded.extras, **decoded.measurements, **decoded.flags}
    new = derive_values(live, settings)
    history = tuple({**h, **derive_values(h, settings)} for h in decoded.history)
    if not new and history == decoded.history:
        return decoded
    return replace(decoded, measurements={**decoded.measurements, **new}, history=history)
