"""Value types of the decoders: the `Decoded` result and the `Draft` codecs fill in. Pure."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

# FORMATS.md section 2: the only names allowed in `Decoded.measurements`.
NORMALIZED_MEASUREMENTS: frozenset[str] = frozenset(
    {
        "co2_ppm",
        "temperature_c",
        "humidity_pct",
        "pressure_hpa",
        "tvoc_ppb",
        "pm2_5_ugm3",
        "distance_mm",
        "fill_pct",
        "level_mm",
        "battery_v",
        "battery_pct",
    }
)


def freeze(value: Any) -> Any:
    """Deep-freeze JSON-like data: dicts become MappingProxyType, lists tuples."""
    t = type(value)
    if t is int or t is float or t is str or t is bool or value is None:  # the hot path
        return value
    if t is dict or t is MappingProxyType:
        if _SCALARS.issuperset(map(type, value.values())) and _STR.issuperset(map(type, value)):
            return MappingProxyType(dict(value))  # flat (the usual case): one C-level copy
        return MappingProxyType(
            {
                (k if type(k) is str else str(k)): (v if type(v) in _SCALARS else freeze(v))
                for k, v in value.items()
            }
        )
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value


_SCALARS = frozenset({int, float, str, bool, type(None)})
_STR = frozenset({str})


def thaw(value: Any) -> Any:
    """Inverse of `freeze`: plain dicts and lists, ready for `json.dumps`."""
    t = type(value)
    if t in _SCALARS:
        return value
    if t is MappingProxyType or t is dict:
        if _SCALARS.issuperset(map(type, value.values())):
            return dict(value)
        return {k: (v if type(v) in _SCALARS else thaw(v)) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Decoded:
    """What a codec makes of one payload. Invalid names or values cannot exist (ValueError)."""

    measurements: Mapping[str, float] = field(default_factory=_empty)
    extras: Mapping[str, Any] = field(default_factory=_empty)
    flags: Mapping[str, bool | str] = field(default_factory=_empty)
    warnings: tuple[str, ...] = ()
    object: Mapping[str, Any] = field(default_factory=_empty)
    history: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        for name, value in self.measurements.items():
            if name not in NORMALIZED_MEASUREMENTS:
                raise ValueError(f"measurement {name!r} is not a normalized name")
            if not is_number(value) or not math.isfinite(value):
                raise ValueError(f"measurement {name} is not a finite number")
        for name, flag in self.flags.items():
            if not isinstance(flag, bool | str):
                raise ValueError(f"flag {name} must be bool or str")
        if not all(isinstance(w, str) for w in self.warnings):
            raise ValueError("warnings must be strings")
        for attr in ("measurements", "extras", "flags", "object"):
            object.__setattr__(self, attr, freeze(getattr(self, attr)))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "history", tuple(freeze(h) for h in self.history))

    @classmethod
    def trusted(
        cls,
        measurements: dict[str, float],
        extras: dict[str, Any],
        flags: dict[str, bool | str],
        warnings: tuple[str, ...],
        obj: dict[str, Any],
        history: tuple[Mapping[str, Any], ...] = (),
    ) -> Decoded:
        """The hot-path constructor for `Draft.build`, which hands over dicts nobody else holds:
        names are normalized by construction, so only the values are checked (same errors as
        __init__), and flat dicts are wrapped, not copied."""
        for name, value in measurements.items():
            t = type(value)
            if (t is not float and t is not int) or not math.isfinite(value):
                raise ValueError(f"measurement {name} is not a finite number")
        for name, flag in flags.items():
            if type(flag) is not bool and not isinstance(flag, str):
                raise ValueError(f"flag {name} must be bool or str")
        self = object.__new__(cls)
        _SET_MEASUREMENTS(self, MappingProxyType(measurements))  # the caller's own dicts
        _SET_EXTRAS(self, _freeze_owned(extras))
        _SET_FLAGS(self, MappingProxyType(flags))
        _SET_WARNINGS(self, warnings)
        _SET_OBJECT(self, _freeze_owned(obj))
        _SET_HISTORY(self, tuple(freeze(h) for h in history) if history else ())
        return self

    def to_json(self) -> dict[str, Any]:
        """Plain, JSON-serialisable copy of every field."""
        return {
            "measurements": thaw(self.measurements),
            "extras": thaw(self.extras),
            "flags": thaw(self.flags),
            "warnings": list(self.warnings),
            "object": thaw(self.object),
            "history": thaw(self.history),
        }


# Slot setters: how `trusted` writes a frozen instance without the dataclass __init__.
_SET_MEASUREMENTS = Decoded.__dict__["measurements"].__set__
_SET_EXTRAS = Decoded.__dict__["extras"].__set__
_SET_FLAGS = Decoded.__dict__["flags"].__set__
_SET_WARNINGS = Decoded.__dict__["warnings"].__set__
_SET_OBJECT = Decoded.__dict__["object"].__set__
_SET_HISTORY = Decoded.__dict__["history"].__set__


def _freeze_owned(d: dict[str, Any]) -> Mapping[str, Any]:
    """`freeze` for a dict nobody else holds (a Draft's): flat ones are wrapped, not copied."""
    scalars = _SCALARS
    for k, v in d.items():  # a plain loop: ~2x map+issuperset for the usual 0-5 items
        if type(k) is not str or type(v) not in scalars:
            return freeze(d)  # type: ignore[no-any-return]
    return MappingProxyType(d)


class Draft:
    """Mutable accumulator a built-in codec fills while walking a frame, then `build()`s."""

    __slots__ = ("extras", "flags", "history", "measurements", "meta", "warnings")

    def __init__(self) -> None:
        self.measurements: dict[str, float] = {}
        self.extras: dict[str, Any] = {}
        self.flags: dict[str, bool | str] = {}
        self.warnings: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}

    def value(self, name: str, value: float) -> None:
        """A number: a measurement when `name` is normalized, otherwise an extra."""
        if name in NORMALIZED_MEASUREMENTS:
            self.measurements[name] = value
        else:
            self.extras[name] = value

    def flag(self, name: str, value: bool | str) -> None:
        self.flags[name] = value

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def stop(self, message: str) -> None:
        """FORMATS.md rule 4.2: an unknown record ends decoding; keep what came before."""
        self.flags["truncated"] = True
        self.warnings.append(message)

    def build(self) -> Decoded:
        obj: dict[str, Any] = {**self.meta, **self.measurements, **self.extras, **self.flags}
        if self.history:
            obj["history"] = self.history
        for name in self.measurements:
            if name not in NORMALIZED_MEASUREMENTS:  # only a codec writing the dict directly
                raise ValueError(f"measurement {name!r} is not a normalized name")
        return Decoded.trusted(
            self.measurements,
            self.extras,
            self.flags,
            tuple(self.warnings),
            obj,
            tuple(self.history),
        )
