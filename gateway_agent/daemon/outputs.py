"""The daemon's outputs: one `OutputWorker` per `[[outputs]]` entry (its sink imported only when
configured), their lanes tidied at start, and their states beside the outbox in `outbox`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from gateway_agent.config.outputs import RELAY_OUTPUT
from gateway_agent.logfmt import log_event
from gateway_agent.outputs.worker import OutputWorker, SinkContext, make_sink

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.daemon.control_server import ControlServer
    from gateway_agent.metrics import Counters
    from gateway_agent.store import Store
    from gateway_agent.store.thread import StoreThread

log = logging.getLogger("gateway_agent.daemon")


class OutputsHost(Protocol):
    cfg: Config
    counters: Counters
    st: StoreThread
    store: Store
    outputs: dict[str, OutputWorker]


def build_outputs(d: OutputsHost) -> dict[str, OutputWorker]:
    ctx = SinkContext(d.cfg.agent.gateway_id, d.counters, d.cfg.agent.state_dir)
    out: dict[str, OutputWorker] = {}
    for o in d.cfg.outputs:
        out[o.name] = OutputWorker(
            o.name,
            make_sink(o, ctx),
            d.store,
            d.st.call,
            d.counters,
            batch_max=o.batch_max,
            backoff=(o.backoff_initial_s, o.backoff_max_s),
        )
    return out


async def forget_removed(d: OutputsHost) -> None:
    """Lanes of outputs no longer in the config go, counted as dropped (`output_removed`)."""
    keep = [o.name for o in d.cfg.outputs] + ([RELAY_OUTPUT] if d.cfg.relay is not None else [])
    gone = await d.st.call(d.store.queue_forget, keep)
    for name, n in gone.items():
        log_event(log, logging.WARNING, "output_removed", output=name, dropped=n)


def register_outputs(ctl: ControlServer, d: OutputsHost) -> None:
    """`outbox` also says each output's state (up/down, last error, delivered); `outbox_retry`
    also ends every output's backoff wait."""
    inner_status = ctl.handlers["outbox"]
    inner_retry = ctl.handlers["outbox_retry"]

    async def outbox(req: dict[str, Any]) -> Any:
        out = await inner_status(req)
        lanes = out.setdefault("outputs", {})
        for name, w in d.outputs.items():
            lane = lanes.setdefault(
                name, {"depth": 0, "by_kind": {}, "oldest_age_s": None, "dropped": {}}
            )
            lane.update(w.status())
            lane["type"] = w.kind
        return out

    async def outbox_retry(req: dict[str, Any]) -> Any:
        out = await inner_retry(req)
        for w in d.outputs.values():
            w.retry_now()
        return out

    ctl.handlers["outbox"] = outbox
    ctl.handlers["outbox_retry"] = outbox_retry
