"""`Secret`: key material that never prints. Imports nothing of the project."""

from __future__ import annotations

import hmac
from typing import Final

_REDACTED: Final = "<redacted>"


class Secret:
    """Holds bytes (a key) or str (a password). repr/str are `<redacted>`; `.reveal()` gives it."""

    __slots__ = ("_value",)
    _value: bytes | str

    def __init__(self, value: bytes | str) -> None:
        object.__setattr__(self, "_value", value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def reveal(self) -> bytes | str:
        return self._value

    def reveal_bytes(self) -> bytes:
        v = self._value
        if not isinstance(v, bytes):
            raise TypeError("secret is not bytes")
        return v

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        a, b = self._value, other._value
        if isinstance(a, str) and isinstance(b, str):
            return hmac.compare_digest(a.encode(), b.encode())
        if isinstance(a, bytes) and isinstance(b, bytes):
            return hmac.compare_digest(a, b)
        return False

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __bool__(self) -> bool:
        return bool(self._value)
