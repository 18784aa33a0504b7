"""The control command `report`: an evidence report from the running daemon's database.

It reads through its own read-only connection in a worker thread (WAL readers do not block the
store thread's commits), one report at a time, so a report never stalls ingest.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from gateway_agent.reports.request import run_request

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.daemon.control_server import ControlServer


class ReportHost(Protocol):
    cfg: Config


def register_report(ctl: ControlServer, d: ReportHost) -> None:
    one_at_a_time = asyncio.Lock()

    @ctl.command("report")
    async def report(req: dict[str, Any]) -> Any:
        async with one_at_a_time:
            cfg = d.cfg
            return await asyncio.to_thread(run_request, cfg.agent.db_path, req, cfg.reports)
