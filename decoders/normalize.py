"""Normalized names without hand work: TTN's normalized payload (`normalizeUplink`) and a map of
common codec field names, each with its unit, onto the measurement names of FORMATS.md. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decoders.types import is_number

# The units each measurement accepts, as the factor to its own unit (FORMATS.md section 2).
UNITS: dict[str, dict[str, float]] = {
    "co2_ppm": {"ppm": 1.0},
    "temperature_c": {"°C": 1.0, "C": 1.0, "degC": 1.0, "celsius": 1.0},
    "humidity_pct": {"%": 1.0, "%RH": 1.0, "RH": 1.0},
    "pressure_hpa": {"hPa": 1.0, "mbar": 1.0, "Pa": 0.01, "kPa": 10.0},
    "tvoc_ppb": {"ppb": 1.0},
    "pm2_5_ugm3": {"µg/m³": 1.0, "μg/m³": 1.0, "ug/m3": 1.0, "µg/m3": 1.0},
    "distance_mm": {"mm": 1.0, "cm": 10.0, "m": 1000.0},
    "level_mm": {"mm": 1.0, "cm": 10.0, "m": 1000.0},
    "battery_v": {"V": 1.0, "mV": 0.001},
    "battery_pct": {"%": 1.0},
}

# Common top-level codec field names -> (measurement, the unit a bare number is in). A field that
# is an object {value, unit} (Decentlab's style) is converted by its own unit instead, and left
# alone when that unit is not one the measurement accepts. Deliberately absent: a bare `tvoc`
# (Elsys sends ppb, the Milesight AM319 a raw index, FORMATS.md 6.1) and `level` (no common unit).
COMMON_NAMES: dict[str, tuple[str, str]] = {
    "co2": ("co2_ppm", "ppm"),
    "CO2": ("co2_ppm", "ppm"),
    "temperature": ("temperature_c", "°C"),
    "temp": ("temperature_c", "°C"),
    "humidity": ("humidity_pct", "%"),
    "relativeHumidity": ("humidity_pct", "%"),
    "relative_humidity": ("humidity_pct", "%"),
    "pressure": ("pressure_hpa", "hPa"),
    "barometric_pressure": ("pressure_hpa", "hPa"),
    "tvoc_ppb": ("tvoc_ppb", "ppb"),
    "pm2_5": ("pm2_5_ugm3", "µg/m³"),
    "pm2.5": ("pm2_5_ugm3", "µg/m³"),
    "pm25": ("pm2_5_ugm3", "µg/m³"),
    "distance": ("distance_mm", "mm"),
    "battery": ("battery_pct", "%"),
    "battery_level": ("battery_pct", "%"),
    "battery_voltage": ("battery_v", "V"),
    "batteryVoltage": ("battery_v", "V"),
    "battery_v": ("battery_v", "V"),
    "BatV": ("battery_v", "V"),
    "vdd": ("battery_v", "mV"),
    "battery_mv": ("battery_v", "mV"),
    "batteryMv": ("battery_v", "mV"),
}

# TTN Device Repository normalized payload (lib/payload.json): path -> measurement. All in the
# agent's units already (°C, %, hPa, ppm, V). `water.temperature.current` is a pipe probe's.
TTN_NORMALIZED: dict[tuple[str, ...], str] = {
    ("air", "co2"): "co2_ppm",
    ("air", "temperature"): "temperature_c",
    ("air", "relativeHumidity"): "humidity_pct",
    ("air", "pressure"): "pressure_hpa",
    ("water", "temperature", "current"): "temperature_c",
    ("battery",): "battery_v",
}


def convert(value: Any, name: str, default_unit: str) -> float | None:
    """`value` (a number in `default_unit`, or {value, unit}) in `name`'s unit; None when it is
    not a number or its unit is not one `name` accepts."""
    unit = default_unit
    if isinstance(value, Mapping):
        unit = value.get("unit", default_unit)
        value = value.get("value")
    if not is_number(value) or not isinstance(unit, str):
        return None
    number: float = value  # is_number: an int or a float, never a bool
    factor = UNITS[name].get(unit.strip())
    if factor is None:
        return None
    if factor == 0.001:  # mV: divide, as FORMATS.md writes it (3600 / 1000 is exactly 3.6)
        return number / 1000
    return number * factor if factor != 1.0 else number


def common_names(data: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
    """Measurements from the common field names at the top of `data`, and the fields used."""
    out: dict[str, float] = {}
    used: list[str] = []
    for key, value in data.items():
        hit = COMMON_NAMES.get(key)
        if hit is None or hit[0] in out:
            continue
        got = convert(value, hit[0], hit[1])
        if got is not None:
            out[hit[0]] = got
            used.append(key)
    return out, used


def ttn_normalized(normalized: Any) -> dict[str, float]:
    """Measurements from a `normalizeUplink` result's data: one measurement object, or a list
    of them (the first carries the live values)."""
    if isinstance(normalized, list):
        normalized = normalized[0] if normalized else None
    if not isinstance(normalized, Mapping):
        return {}
    out: dict[str, float] = {}
    for path, name in TTN_NORMALIZED.items():
        cur: Any = normalized
        for part in path:
            cur = cur.get(part) if isinstance(cur, Mapping) else None
        if is_number(cur) and name not in out:
            out[name] = cur
    return out
