"""Radio sources: turn UDP datagrams / serial lines into `RadioFrame`s. They know no devices.

Every source implements `Source`; `SOURCE_TYPES` maps the config `type` to its factory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame


@runtime_checkable
class Source(Protocol):
    name: str

    async def run(self, out: asyncio.Queue[RadioFrame], stop: asyncio.Event) -> None:
        """Receive until `stop` is set. Never raises on bad input; a full `out` drops + counts."""

    def can_downlink(self, gateway_id: str) -> bool:
        """True when a fresh downlink route to that gateway exists."""

    def send_downlink(self, tx: DownlinkTx) -> bool:
        """Queue a downlink (non-blocking). False when there is no route."""

    def stats(self) -> dict[str, Any]:
        """Per-source and per-gateway figures for the CLI (JSON-able)."""


# type name -> factory(source_config, counters) ; filled by the modules that define sources.
SOURCE_TYPES: dict[str, Callable[..., Source]] = {}


def source_type(name: str) -> Callable[[Callable[..., Source]], Callable[..., Source]]:
    def deco(factory: Callable[..., Source]) -> Callable[..., Source]:
        if name in SOURCE_TYPES:
            raise ValueError(f"duplicate source type {name!r}")
        SOURCE_TYPES[name] = factory
        return factory

    return deco
