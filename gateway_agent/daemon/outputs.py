"""The daemon's outputs: one `OutputWorker` per `[[outputs]]` entry (its sink imported only when
configured), their lanes tidied at start, and their states beside the outbox in `outbox`."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from gateway_agent.config import Config
from gateway_agent.config.outputs import (
    RELAY_OUTPUT,
    UPSTREAM_LANE,
    OutputConfig,
    upstream_in_lane,
)
from gateway_agent.logfmt import log_event
from gateway_agent.outputs.worker import OutputWorker, SinkContext, make_sink
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING

if TYPE_CHECKING:
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


def lane_outputs(cfg: Config) -> tuple[OutputConfig, ...]:
    """The outputs reading the shared rows: `[[outputs]]`, and `[upstream]` itself when it is
    JSON beside them (an `mqtt` output with today's topics and bodies, on a connection of its
    own: the forwarder keeps its own for status messages and `data_dropped` events)."""
    outs = tuple(cfg.outputs)
    if upstream_in_lane(cfg):
        u = cfg.upstream
        lane = OutputConfig(
            name=UPSTREAM_LANE,
            type="mqtt",
            batch_max=1000,  # a delivery is one stop-and-wait for its PUBACKs
            backoff_initial_s=u.backoff_initial_s,
            backoff_max_s=u.backoff_max_s,
            mqtt=replace(u, client_id=f"{u.client_id}-lane" if u.client_id else ""),
        )
        outs = (lane, *outs)
    return outs


def build_outputs(d: OutputsHost) -> dict[str, OutputWorker]:
    ctx = SinkContext(d.cfg.agent.gateway_id, d.counters, d.cfg.agent.state_dir)
    out: dict[str, OutputWorker] = {}
    for o in lane_outputs(d.cfg):
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
    outs = lane_outputs(d.cfg)
    keep = [o.name for o in outs] + ([RELAY_OUTPUT] if d.cfg.relay is not None else [])
    gone = await d.st.call(d.store.queue_forget, keep)
    for name, n in gone.items():
        log_event(log, logging.WARNING, "output_removed", output=name, dropped=n)
    # Each output's positions over the rows they share, for the kinds it takes.
    prio = {"alert": PRIO_ALERT, "event": PRIO_EVENT, "up": PRIO_READING}
    wants = {o.name: {prio[k] for k in o.kinds} for o in outs}
    await d.st.call(d.store.queue_configure, wants)


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
