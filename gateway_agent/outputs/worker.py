"""One output's drain: its lane of the output queue (store/queue.py) into its `Sink`, with
backoff while the destination is down. A row leaves the lane only once the sink says it landed.

Sinks are made by type (`SINKS`: module names, imported only when an output of that type is
configured, so an install without them never loads aiohttp or grpc for it).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.errors import StoreError
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.metrics import Counters
from gateway_agent.store import QueueRow, Store
from gateway_agent.upstream.pacing import Backoff

log = logging.getLogger("gateway_agent.outputs")
StoreCall = Callable[..., Awaitable[Any]]

# type -> module holding `make_sink(cfg: OutputConfig, ctx: SinkContext) -> Sink`
SINKS = {
    "mqtt": "gateway_agent.outputs.mqtt",
    "homeassistant": "gateway_agent.outputs.homeassistant",
    "influxdb": "gateway_agent.outputs.influxdb",
    "webhook": "gateway_agent.outputs.webhook",
    "azure-iothub": "gateway_agent.outputs.azure",
    "aws-iot": "gateway_agent.outputs.aws",
}


class OutputDown(Exception):
    """The destination cannot take rows now (unreachable, 5xx, timeout): back off, retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Delivery:
    """What one `Sink.deliver` achieved: `done` landed (leave the lane); `refused` will never
    land (a 4xx, a body the destination rejects): they leave the lane counted as dropped.
    Rows in neither stay and are offered again, in order."""

    done: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    refused_reason: str = "refused"
    down_reason: str | None = None  # why the rest did not land (shown as the output's error)


class Sink(Protocol):
    """One destination. `open` connects (raise OutputDown when it cannot), `deliver` takes rows
    in (priority, seq) order and returns what landed, `close` lets go. Called on the loop."""

    async def open(self) -> None: ...

    async def deliver(self, rows: Sequence[QueueRow]) -> Delivery: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a sink may need from the agent besides its own settings."""

    gateway_id: str
    counters: Counters
    state_dir: Any = None  # Path: the agent's state directory


def make_sink(cfg: OutputConfig, ctx: SinkContext) -> Sink:
    mod = importlib.import_module(SINKS[cfg.type])
    sink: Sink = mod.make_sink(cfg, ctx)
    return sink


class OutputWorker:
    """Drain one lane: fetch up to `batch_max` rows, deliver, delete what landed, repeat; wait
    for a commit when the lane is empty; back off (capped, jittered) while the sink is down."""

    def __init__(
        self,
        name: str,
        sink: Sink,
        store: Store,
        store_call: StoreCall,
        counters: Counters,
        batch_max: int = 100,
        backoff: tuple[float, float] = (1.0, 60.0),
        kind: str = "output",
    ) -> None:
        self.name = name
        self.sink = sink
        self.store = store
        self.store_call = store_call
        self.counters = counters
        self.batch_max = batch_max
        self.kind = kind  # "output" or "relay": the metric label
        self.wake = asyncio.Event()
        self.state = "starting"  # starting | up | down | stopped
        self.last_error: str | None = None
        self.delivered = 0
        self.refused = 0
        self.last_delivery: float | None = None  # wall clock
        self._backoff = Backoff(backoff[0], backoff[1])
        self._limit = RateLimitedLog(log, window_s=10.0)
        self._retry = asyncio.Event()
        # A hook for rows the lane drops before offering them (e.g. a stale join-request):
        # returns the seqs to drop and a reason.
        self.stale: Callable[[Sequence[QueueRow]], tuple[list[int], str]] | None = None

    def notify_commit(self) -> None:
        self.wake.set()

    def retry_now(self) -> None:
        self._backoff.reset()
        self._retry.set()
        self.wake.set()

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "last_error": self.last_error,
            "delivered": self.delivered,
            "refused": self.refused,
            "last_delivery": self.last_delivery,
        }

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sink.open()
                self._up()
                await self._drain(stop)
            except OutputDown as e:
                self._down(e.reason)
            except StoreError as e:  # disk trouble: the rows stay; try again after a pause
                self._down(f"store: {e.reason}")
            except Exception as e:  # a sink bug must not end the daemon or the other outputs
                self.counters.internal_error(f"output:{self.name}")
                self._down(f"internal: {type(e).__name__}")
            finally:
                try:
                    await self.sink.close()
                except Exception:  # noqa: S110 - closing a broken link may fail too
                    pass
            if stop.is_set():
                break
            await self._pause(stop)
        self.state = "stopped"

    def _up(self) -> None:
        if self.state != "up":
            log_event(log, logging.INFO, "output_up", output=self.name)
        self.state, self.last_error = "up", None

    def _down(self, reason: str) -> None:
        self.state, self.last_error = "down", reason
        self.counters.inc("output_errors", output=self.name)
        self._limit.warn("output_down", key=self.name, output=self.name, reason=reason)

    async def _pause(self, stop: asyncio.Event) -> None:
        delay = self._backoff.next_delay()
        self._retry.clear()
        waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._retry.wait())]
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _drain(self, stop: asyncio.Event) -> None:
        store = self.store
        while not stop.is_set():
            self.wake.clear()
            rows = await self.store_call(store.queue_fetch, self.name, self.batch_max)
            if rows and self.stale is not None:
                gone, reason = self.stale(rows)
                if gone:
                    await self.store_call(store.queue_drop, self.name, gone, reason)
                    self.counters.inc("output_dropped", len(gone), output=self.name, reason=reason)
                    drop = set(gone)
                    rows = [r for r in rows if r.seq not in drop]
                    if not rows:
                        continue
            if not rows:
                # Idle: the positions moved since the last commit reach the file now.
                await self.store_call(store.queue_flush)
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                continue
            got = await self.sink.deliver(rows)
            if got.done or got.refused:
                await self.store_call(
                    store.queue_settle, self.name, got.done, got.refused, got.refused_reason
                )
            if got.done:
                self.delivered += len(got.done)
                self.last_delivery = time.time()
                self.counters.inc("output_delivered", len(got.done), output=self.name)
                self._backoff.reset()
            if got.refused:
                self.refused += len(got.refused)
                # The label is the reason's head ("http 400"), not the server's text: bounded.
                label = got.refused_reason.split(":", 1)[0][:40]
                self.counters.inc(
                    "output_dropped", len(got.refused), output=self.name, reason=label
                )
                self._limit.warn(
                    "output_refused",
                    key=self.name,
                    output=self.name,
                    rows=len(got.refused),
                    reason=got.refused_reason,
                )
            if len(got.done) + len(got.refused) < len(rows):
                # Some rows did not land: the sink is in trouble; they are offered again after
                # a pause (in order: nothing behind them overtakes them).
                raise OutputDown(got.down_reason or "partial delivery")
