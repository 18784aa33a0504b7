"""Per (rule, device) state and its JSON form, persisted by the shell with the reading. Pure.

`data` holds a kind's own bounded, JSON-shaped values (numbers, strings, None, nested tuples).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from gateway_agent.errors import BadInput

STATE_VERSION = 1


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RuleState:
    """Where one rule stands for one device.

    `episode_ms` is the raise time of the current (or last) alert episode, in ms: the alert ids of a
    raise and its clear are built from it, so they stay the same across a restart.
    """

    active: bool = False
    episode_ms: int | None = None
    bad_since: float | None = None  # raise condition true since (the `for` timer)
    good_since: float | None = None  # clear condition true since (the `clear_for` timer)
    last_seen: float | None = None  # last uplink evaluated (silence)
    watch_since: float | None = None  # first evaluate/tick (silence before any uplink)
    measurement: str | None = None
    value: float | None = None
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        if not isinstance(self.data, MappingProxyType):
            object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    def with_data(self, **changes: Any) -> RuleState:
        d = dict(self.data)
        d.update(changes)
        return replace(self, data=d)


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _frozen(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_frozen(x) for x in v)
    if isinstance(v, dict):
        raise ValueError("nested tables are not allowed in rule state data")
    return v


def state_to_json(state: RuleState) -> str:
    """Compact JSON for the store. Non-finite floats become null."""
    d = {f.name: _plain(getattr(state, f.name)) for f in fields(RuleState)}
    d["v"] = STATE_VERSION
    return json.dumps(d, separators=(",", ":"), sort_keys=True, allow_nan=False)


_TYPES: dict[str, tuple[type, ...]] = {
    "active": (bool,),
    "episode_ms": (int, type(None)),
    "bad_since": (int, float, type(None)),
    "good_since": (int, float, type(None)),
    "last_seen": (int, float, type(None)),
    "watch_since": (int, float, type(None)),
    "measurement": (str, type(None)),
    "value": (int, float, type(None)),
    "detail": (str,),
    "data": (dict,),
}


def state_from_json(s: str) -> RuleState:
    """Inverse of `state_to_json`. Raises BadInput(reason="rule_state") on anything else."""
    try:
        d = json.loads(s)
        if not isinstance(d, dict) or d.pop("v", None) != STATE_VERSION:
            raise ValueError("not a rule state of this version")
        kw: dict[str, Any] = {}
        for k, v in d.items():
            if k not in _TYPES:
                raise ValueError(f"unknown field {k}")
            if not isinstance(v, _TYPES[k]) or (k != "active" and isinstance(v, bool)):
                raise ValueError(f"bad type for {k}")
            kw[k] = v
        for k in ("bad_since", "good_since", "last_seen", "watch_since", "value"):
            if isinstance(kw.get(k), int):
                kw[k] = float(kw[k])
        if "data" in kw:
            kw["data"] = {str(k): _frozen(v) for k, v in kw["data"].items()}
        return RuleState(**kw)
    except (ValueError, TypeError, RecursionError) as e:
        raise BadInput(f"unreadable rule state: {e}", reason="rule_state") from None
