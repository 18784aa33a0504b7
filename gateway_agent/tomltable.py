"""One TOML table read key by key with its key path: leftovers and bad values are ConfigErrors.

Shared by the agent config (`config.py`) and the rules loader (`rules/table.py`). Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from gateway_agent.errors import ConfigError

T = TypeVar("T")


def shown(s: str, limit: int = 60) -> str:
    """A string value quoted for a one-line message: control characters escaped, long values cut
    (a message must stay one line and must not flood the journal with a mistaken file)."""
    if not s.isprintable():
        s = s.encode("unicode_escape").decode("ascii")
    if len(s) > limit:
        s = s[:limit] + f"...({len(s)} characters)"
    return f'"{s}"'


def type_name(v: object, *, literal: bool = False) -> str:
    """How a TOML value is named in an error message (`an integer`, `"abc"`, `a table`); with
    `literal`, booleans and numbers are shown as written (`true`, `3.5`), as rule errors do."""
    if isinstance(v, bool):
        return ("true" if v else "false") if literal else "a boolean"
    if literal and isinstance(v, int) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"  # repr() refuses 4300+ digits
    if literal and isinstance(v, int | float):
        return repr(v)
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return shown(v)
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "a table"
    return type(v).__name__


class TomlTable:
    """Remembers which keys were consumed, so `done()` can reject the leftovers (typos)."""

    describe: Callable[[object], str] = staticmethod(type_name)

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path, f"expected a table, got {self.describe(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        self.seen: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def has(self, k: str) -> bool:
        return k in self.data

    def get(self, k: str, conv: Callable[[Any, str], T], default: T) -> T:
        self.seen.add(k)
        if k not in self.data:
            return default
        return conv(self.data[k], self.key(k))

    def req(self, k: str, conv: Callable[[Any, str], T]) -> T:
        self.seen.add(k)
        if k not in self.data:
            raise ConfigError(self.key(k), "is required")
        return conv(self.data[k], self.key(k))

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            raise ConfigError(self.key(extra[0]), "unknown key")


# Value checks shared by every loader (config, rules, reports, web): one text for one mistake.


def c_int(lo: int, hi: int) -> Callable[[Any, str], int]:
    def conv(v: Any, p: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(p, f"expected an integer {lo}-{hi}, got {type_name(v)}")
        return v

    return conv


def c_num(lo: float, hi: float) -> Callable[[Any, str], float]:
    def conv(v: Any, p: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise ConfigError(p, f"expected a number {lo:g}-{hi:g}, got {type_name(v)}")
        return float(v)

    return conv
