"""Value converters for config tables: each takes (value, key_path) and raises ConfigError."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from gateway_agent.errors import ConfigError
from gateway_agent.tomltable import shown, type_name

T = TypeVar("T")


def c_any(v: Any, p: str) -> Any:
    return v


def c_str(v: Any, p: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(p, f"expected a string, got {type_name(v)}")
    return v


def c_nonempty(v: Any, p: str) -> str:
    s = c_str(v, p)
    if not s.strip():
        raise ConfigError(p, "expected a non-empty string")
    return s


def c_bool(v: Any, p: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(p, f"expected true or false, got {type_name(v)}")
    return v


def c_choice(*choices: str) -> Callable[[Any, str], str]:
    def conv(v: Any, p: str) -> str:
        if not isinstance(v, str) or v not in choices:
            raise ConfigError(p, f"expected one of {' | '.join(choices)}, got {type_name(v)}")
        return v

    return conv


def c_hex(n: int | None) -> Callable[[Any, str], bytes]:
    def conv(v: Any, p: str) -> bytes:
        b = parse_hex(v, p)
        if n is not None and len(b) != n:
            raise ConfigError(p, f"expected {n} bytes of hex ({2 * n} digits), got {len(b)} bytes")
        return b

    return conv


def parse_hex(v: Any, p: str = "") -> bytes:
    """Hex in any case, with or without separators (space, ':', '-', '_'), optional 0x."""
    if not isinstance(v, str):
        raise ConfigError(p, f"expected a hex string, got {type_name(v)}")
    s = v.strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    for sep in (" ", ":", "-", "_", "\t"):
        s = s.replace(sep, "")
    try:
        if len(s) % 2:
            raise ValueError
        return bytes.fromhex(s)
    except ValueError:
        # Never echo the value: in a key field that would put most of a key in the journal.
        raise ConfigError(
            p, f"expected hex digits, got {len(v)} characters that are not all hex"
        ) from None


def c_hostport(v: Any, p: str) -> tuple[str, int]:
    if not isinstance(v, str) or ":" not in v:
        raise ConfigError(p, f'expected "host:port", got {type_name(v)}')
    host, _, port_s = v.rpartition(":")
    host = host.strip("[]")
    # isascii: "²".isdigit() is true but int() refuses it; len: int() refuses 4300+ digits.
    ok_port = port_s.isascii() and port_s.isdigit() and len(port_s) <= 5
    if not host or not ok_port or not 0 <= int(port_s) <= 65535:
        raise ConfigError(p, f'expected "host:port" with a port 0-65535, got {shown(v)}')
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(
                p, f"expected an IP address or localhost, got {shown(host)}"
            ) from None
        host = "127.0.0.1"
    return host, int(port_s)


def c_path(base: Path | None) -> Callable[[Any, str], Path]:
    def conv(v: Any, p: str) -> Path:
        s = c_nonempty(v, p)
        if "\0" in s:  # the OS refuses such a path later, with a ValueError, not an OSError
            raise ConfigError(p, "expected a path, got a NUL character in it")
        try:
            path = Path(s).expanduser()
        except RuntimeError:  # "~name" for a user this system does not have
            raise ConfigError(p, f"cannot expand ~ (no such user): {shown(s)}") from None
        if not path.is_absolute() and base is not None:
            path = base / path
        return path

    return conv


def c_list(item: Callable[[Any, str], T]) -> Callable[[Any, str], tuple[T, ...]]:
    def conv(v: Any, p: str) -> tuple[T, ...]:
        if not isinstance(v, list):
            raise ConfigError(p, f"expected an array, got {type_name(v)}")
        return tuple(item(x, f"{p}[{i}]") for i, x in enumerate(v))

    return conv


def c_choice_int(*choices: int) -> Callable[[Any, str], int]:
    def conv(v: Any, p: str) -> int:
        if isinstance(v, bool) or v not in choices:
            raise ConfigError(
                p, f"expected one of {', '.join(map(str, choices))}, got {type_name(v)}"
            )
        return int(v)

    return conv
