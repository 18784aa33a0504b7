"""Reads one `[[rules]]` table key by key with its key path, so leftovers and bad values are errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

from gateway_agent.errors import ConfigError
from gateway_agent.rules.duration import parse_duration
from gateway_agent.tomltable import TomlTable, type_name

T = TypeVar("T")


def show(v: object) -> str:
    """How a TOML value is named in a rule error: booleans and numbers as written."""
    return type_name(v, literal=True)


class Table(TomlTable):
    """One TOML table at `path` (e.g. `rules[2] (co2-critical)`); remembers the keys it consumed."""

    describe = staticmethod(show)

    def fail(self, k: str, message: str) -> ConfigError:
        return ConfigError(self.key(k), message)

    def _get(self, k: str, conv: Callable[[Any, str], T], default: T, required: bool) -> T:
        return self.req(k, conv) if required else self.get(k, conv, default)

    def number(
        self,
        k: str,
        default: float | None = None,
        *,
        required: bool = False,
        lo: float = -math.inf,
        hi: float = math.inf,
    ) -> float | None:
        def conv(v: Any, p: str) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ConfigError(p, f"expected a number, got {show(v)}")
            if not lo <= v <= hi:
                raise ConfigError(p, f"expected a number from {lo:g} to {hi:g}, got {show(v)}")
            return float(v)

        return self._get(k, conv, default, required)

    def need_number(self, k: str, *, lo: float = -math.inf, hi: float = math.inf) -> float:
        v = self.number(k, required=True, lo=lo, hi=hi)
        assert v is not None
        return v

    def integer(self, k: str, default: int, *, lo: int, hi: int) -> int:
        def conv(v: Any, p: str) -> int:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(p, f"expected an integer from {lo} to {hi}, got {show(v)}")
            return v

        return self._get(k, conv, default, False)

    def string(
        self,
        k: str,
        default: str | None = None,
        *,
        required: bool = False,
        choices: tuple[str, ...] = (),
    ) -> str | None:
        def conv(v: Any, p: str) -> str:
            if not isinstance(v, str) or not v.strip():
                raise ConfigError(p, f"expected a non-empty string, got {show(v)}")
            if choices and v not in choices:
                raise ConfigError(p, f"expected one of {', '.join(choices)}, got {show(v)}")
            return v

        return self._get(k, conv, default, required)

    def choice(self, k: str, default: str, choices: tuple[str, ...]) -> str:
        v = self.string(k, default, choices=choices)
        assert v is not None
        return v

    def boolean(self, k: str, default: bool) -> bool:
        def conv(v: Any, p: str) -> bool:
            if not isinstance(v, bool):
                raise ConfigError(p, f"expected true or false, got {show(v)}")
            return v

        return self._get(k, conv, default, False)

    def duration(
        self, k: str, default: float | None = None, *, required: bool = False
    ) -> float | None:
        def conv(v: Any, p: str) -> float:
            try:
                return parse_duration(v)
            except ValueError as e:
                raise ConfigError(p, str(e)) from None

        return self._get(k, conv, default, required)

    def strings(self, k: str, *, one_ok: bool = True) -> tuple[str, ...] | None:
        """An array of non-empty strings (or, if `one_ok`, a single string). None when absent."""

        def conv(v: Any, p: str) -> tuple[str, ...]:
            if one_ok and isinstance(v, str):
                v = [v]
            if not isinstance(v, list) or not v:
                raise ConfigError(p, f"expected a non-empty array of strings, got {show(v)}")
            for i, s in enumerate(v):
                if not isinstance(s, str) or not s.strip():
                    raise ConfigError(f"{p}[{i}]", f"expected a non-empty string, got {show(s)}")
            return tuple(v)

        return self._get(k, conv, None, False)

    def raw(self, k: str) -> Any:
        self.seen.add(k)
        return self.data.get(k)
