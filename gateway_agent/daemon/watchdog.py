"""The health gate and the systemd watchdog: WATCHDOG=1 only while ingest and the store thread
answer, so a stalled pipeline gets the process restarted."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol

from gateway_agent.logfmt import log_event

if TYPE_CHECKING:
    from gateway_agent.daemon.sdnotify import Notifier
    from gateway_agent.store import Store
    from gateway_agent.store.thread import StoreThread

# The name these lines carried before the daemon was split into modules; log filters still match.
log = logging.getLogger("gateway_agent.daemon")

HEARTBEAT_MAX_S = 5.0  # ingest's loop wakes at least every 0.5 s, even when idle
STORE_MAX_S = 60.0  # the last answer from the store thread (the probe below keeps one coming)


def pipeline_healthy(now_mono: float, ingest_heartbeat: float, store_last_ok: float) -> bool:
    """True while ingest's heartbeat and the store thread's last answer are fresh (monotonic s)."""
    return now_mono - ingest_heartbeat < HEARTBEAT_MAX_S and now_mono - store_last_ok < STORE_MAX_S


class WatchdogHost(Protocol):
    """What the watchdog needs from the daemon."""

    notifier: Notifier
    stop: asyncio.Event
    st: StoreThread
    store: Store

    def healthy(self) -> bool: ...


async def watchdog(d: WatchdogHost) -> None:
    """Ping systemd every half WATCHDOG_USEC while healthy; without a watchdog, wait for stop."""
    wd = d.notifier.watchdog_s
    if wd is None:
        await d.stop.wait()
        return
    interval = wd / 2
    probe = 0
    while not d.stop.is_set():
        try:
            await asyncio.wait_for(d.stop.wait(), timeout=interval)
            break
        except TimeoutError:
            pass
        probe += 1
        if probe % 4 == 0:  # prove the store thread still answers
            await d.st.call(d.store.get_meta, "schema")
        if d.healthy():
            d.notifier.watchdog()
        else:
            log_event(log, logging.ERROR, "watchdog_withheld", reason="pipeline_stalled")
