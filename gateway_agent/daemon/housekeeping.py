"""The housekeeping round (every HOUSEKEEPING_S): clock-jump check, per-gateway figures into the
DB, and store pressure (disk cap, retention, ENOSPC) shed per invariant 4 and reported upstream."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from gateway_agent.errors import DiskFullError, StoreError
from gateway_agent.logfmt import log_event

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.ingest import Ingest
    from gateway_agent.metrics import Counters
    from gateway_agent.sources import Source
    from gateway_agent.store import Store
    from gateway_agent.store.thread import StoreThread
    from gateway_agent.upstream.forwarder import Forwarder

# The name these lines carried before the daemon was split into modules; log filters still match.
log = logging.getLogger("gateway_agent.daemon")

CLOCK_JUMP_S = 120.0


class HousekeepingHost(Protocol):
    """What the housekeeping round needs from the daemon."""

    cfg: Config
    counters: Counters
    sources: list[Source]
    st: StoreThread
    store: Store
    ingest: Ingest
    forwarder: Forwarder


class Housekeeping:
    """Holds what one round remembers for the next: the clock offset and refusals reported."""

    def __init__(self, d: HousekeepingHost) -> None:
        self.d = d
        self.clock_offset = time.time() - time.monotonic()
        self.refused_reported = 0

    async def round(self) -> None:
        self.check_clock()
        await self.save_gateway_stats()
        await self.store_pressure()

    def check_clock(self) -> None:
        # Clock jump: wall minus monotonic moves only when the wall clock is stepped.
        offset = time.time() - time.monotonic()
        if abs(offset - self.clock_offset) > CLOCK_JUMP_S:
            log_event(
                log, logging.WARNING, "clock_jump", jump_s=round(offset - self.clock_offset, 1)
            )
            self.d.ingest.add_event("clock_jump", {"jumpS": round(offset - self.clock_offset, 1)})
        self.clock_offset = offset

    async def save_gateway_stats(self) -> None:
        """Per-gateway figures (last seen, rx ok/bad, tx ok/failed) into the DB for the CLI."""
        d = self.d
        stats: dict[str, Any] = {}
        for s in d.sources:
            gw = s.stats().get("gateways", {})
            if isinstance(gw, dict):
                stats.update(gw)
        if stats:
            with contextlib.suppress(StoreError):  # disk full must not skip the shedding after
                await d.st.call(d.store.save_gateway_stats, stats)

    async def store_pressure(self) -> None:
        """Disk cap, retention, ENOSPC: shed per invariant 4 and report every drop upstream."""
        d = self.d
        dropped = await d.st.call(
            d.store.enforce_cap,
            int(d.cfg.store.max_db_mb * 1024 * 1024),
            d.cfg.store.retention_days * 86400,
            time.time(),
        )
        if dropped.get("history"):  # retention and cap on the local copy; the cap part is in
            d.counters.inc("history_deleted", dropped["history"])  # the drop report below
        await d.forwarder.report_drops()
        try:
            refused = d.ingest.refused - self.refused_reported
            if refused > 0:
                row = d.forwarder.event_row(
                    "readings_refused", {"count": refused, "reason": "disk_full"}
                )
                await d.st.call(d.store.add_outbox, [row])
                self.refused_reported += refused
        except DiskFullError as e:
            log_event(log, logging.ERROR, "disk_full", error=str(e), refused=d.ingest.refused)
