"""The timers task: rule timers every TICK_S (silence, `for` windows without uplinks), drop
reports as soon as the store sheds, and the housekeeping round every HOUSEKEEPING_S."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from gateway_agent.errors import AgentError
from gateway_agent.logfmt import log_event

if TYPE_CHECKING:
    from gateway_agent.ingest import Ingest
    from gateway_agent.metrics import Counters
    from gateway_agent.store import Store
    from gateway_agent.upstream.forwarder import Forwarder

# The name these lines carried before the daemon was split into modules; log filters still match.
log = logging.getLogger("gateway_agent.daemon")

TICK_S = 2.0  # rule timers (silence, `for` windows without uplinks)
HOUSEKEEPING_S = 15.0  # disk cap, retention, gateway stats, clock check


class TimersHost(Protocol):
    """What the timers task needs from the daemon."""

    stop: asyncio.Event
    counters: Counters
    ingest: Ingest
    store: Store
    forwarder: Forwarder


async def timers(d: TimersHost, housekeeping: Callable[[], Awaitable[None]]) -> None:
    """Until stop: tick the rules, report drops, and run `housekeeping` every HOUSEKEEPING_S.
    A failing round is logged and counted; the next one runs as usual."""
    next_house = time.monotonic() + 1.0
    while not d.stop.is_set():
        try:
            await asyncio.wait_for(d.stop.wait(), timeout=TICK_S)
            break
        except TimeoutError:
            pass
        try:
            d.ingest.tick_rules(time.time())
            if d.store.drops_unreported:
                await d.forwarder.report_drops()
            if time.monotonic() >= next_house:
                next_house = time.monotonic() + HOUSEKEEPING_S
                await housekeeping()
        except AgentError as e:
            log_event(log, logging.WARNING, "housekeeping_failed", reason=e.reason, error=str(e))
        except Exception:
            d.counters.internal_error("timers")
            log.exception("internal_error where=timers")
