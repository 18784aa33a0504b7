"""Handlers shared by the record-based codecs (Elsys types, Milesight channels). Pure.

A handler reads one record's value from its own bounded `Reader` into the `Draft`.
"""

from __future__ import annotations

from collections.abc import Callable

from decoders.binary import Reader
from decoders.types import Draft

Handler = Callable[[Reader, Draft], None]


def number(name: str, read: Callable[[Reader], int], div: float = 1) -> Handler:
    """A measurement: the integer `read` returns, divided by `div` (kept an int when 1)."""

    def h(r: Reader, d: Draft) -> None:
        raw = read(r)
        d.value(name, raw / div if div != 1 else raw)

    return h


def flag(name: str) -> Handler:
    """A one-byte boolean: any non-zero byte is true."""

    def h(r: Reader, d: Draft) -> None:
        d.flag(name, r.u8() != 0)

    return h
