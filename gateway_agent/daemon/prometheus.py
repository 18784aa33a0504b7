"""Prometheus exposition of the daemon's counters and gauges on a loopback port ([metrics] listen).

The HTTP server runs in prometheus_client's own thread; SQLite figures are refreshed on the store
thread by `serve_metrics` (all SQLite work stays on one thread) and read from a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from gateway_agent import __version__
from gateway_agent.logfmt import log_event
from gateway_agent.metrics import Counters

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.ingest import Ingest
    from gateway_agent.lorawan.radio import RadioFrame
    from gateway_agent.store import Store
    from gateway_agent.store.thread import StoreThread
    from gateway_agent.upstream.forwarder import Forwarder

log = logging.getLogger(__name__)

PREFIX = "gateway_agent_"
REFRESH_S = 5.0
RETRY_S = 30.0
_BAD = re.compile(r"[^a-zA-Z0-9_]")


def metric_name(name: str) -> str:
    """A counter name (`bad_input`) -> a valid Prometheus name (`gateway_agent_bad_input`)."""
    n = _BAD.sub("_", name)
    return PREFIX + (n if not n[:1].isdigit() else "_" + n)


def counter_families(counters: Counters) -> list[Metric]:
    """One counter family per name; label sets that differ within a name are padded with ""."""
    grouped: dict[str, list[tuple[dict[str, str], int]]] = {}
    for name, labels, value in counters.items():
        grouped.setdefault(name, []).append(
            ({_BAD.sub("_", k): v for k, v in labels.items()}, value)
        )
    out: list[Metric] = []
    for name, rows in grouped.items():
        keys = sorted({k for labels, _ in rows for k in labels})
        fam = CounterMetricFamily(metric_name(name), f"gateway-agent counter {name}", labels=keys)
        for labels, value in rows:
            fam.add_metric([labels.get(k, "") for k in keys], value)
        out.append(fam)
    return out


class MetricsHost(Protocol):
    """What the metrics endpoint reads from the daemon (`forwarder` and `ingest` may be unset
    during start; the collector checks)."""

    cfg: Config
    counters: Counters
    started_mono: float
    frames: asyncio.Queue[RadioFrame]
    st: StoreThread
    store: Store
    ingest: Ingest
    forwarder: Forwarder

    def healthy(self) -> bool: ...


class DaemonCollector(Collector):
    """Reads the daemon at scrape time; DB figures come from `snapshot` (refreshed elsewhere)."""

    def __init__(self, daemon: MetricsHost) -> None:
        self.d = daemon
        self.snapshot: dict[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        d = self.d
        yield from counter_families(d.counters)
        info = InfoMetricFamily(PREFIX + "build", "gateway-agent version")
        info.add_metric([], {"version": __version__, "gateway_id": d.cfg.agent.gateway_id})
        yield info
        yield _gauge(
            "uptime_seconds", "Seconds since the daemon started", time.monotonic() - d.started_mono
        )
        yield _gauge(
            "healthy",
            "1 while the pipeline heartbeat is fresh (watchdog gate)",
            1.0 if _safe(d.healthy, False) else 0.0,
        )
        yield _gauge("frame_queue_depth", "Radio frames waiting for ingest", d.frames.qsize())
        fw = getattr(d, "forwarder", None)
        if fw is not None:
            yield _gauge(
                "upstream_connected",
                "1 while connected to the MQTT broker",
                1.0 if fw.connected else 0.0,
            )
            yield _counter(
                "upstream_published", "Messages acknowledged by the broker", fw.published
            )
        ing = getattr(d, "ingest", None)
        if ing is not None:
            yield _counter("uplinks_accepted", "Uplinks committed to the database", ing.accepted)
            yield _gauge("devices_provisioned", "Devices known to the daemon", len(ing.devices))
        snap = self.snapshot
        if "outbox" in snap:
            ob = snap["outbox"]
            depth = GaugeMetricFamily(
                PREFIX + "outbox_depth", "Messages waiting to go upstream", labels=["kind"]
            )
            for kind in ("up", "alert", "event"):
                depth.add_metric([kind], ob["by_kind"].get(kind, 0))
            yield depth
            age = (snap["time"] - ob["oldest"]) if ob.get("oldest") else 0.0
            yield _gauge("outbox_oldest_age_seconds", "Age of the oldest waiting message", age)
        if snap.get("outputs") is not None:
            yield from _output_metrics(snap, getattr(d, "outputs", {}))
        if "db_size_bytes" in snap:
            yield _gauge("db_size_bytes", "SQLite file + WAL size", snap["db_size_bytes"])
            yield _gauge(
                "db_cap_bytes", "Configured database cap", d.cfg.store.max_db_mb * 1024 * 1024
            )


def _output_metrics(snap: dict[str, Any], workers: dict[str, Any]) -> Any:
    """Per output (`[[outputs]]` and the relay): depth, oldest age, and 1 while it delivers."""
    lanes = snap["outputs"]
    names = sorted(set(lanes) | set(workers))
    depth = GaugeMetricFamily(
        PREFIX + "output_depth", "Messages waiting for one output", labels=["output"]
    )
    age = GaugeMetricFamily(
        PREFIX + "output_oldest_age_seconds",
        "Age of the oldest message waiting for one output",
        labels=["output"],
    )
    up = GaugeMetricFamily(
        PREFIX + "output_up", "1 while the output's destination takes messages", labels=["output"]
    )
    for name in names:
        lane = lanes.get(name, {})
        depth.add_metric([name], lane.get("depth", 0))
        oldest = lane.get("oldest")
        age.add_metric([name], (snap["time"] - oldest) if oldest else 0.0)
        w = workers.get(name)
        up.add_metric([name], 1.0 if w is not None and w.state == "up" else 0.0)
    yield depth
    yield age
    yield up


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, value=value)


def _safe(fn: Any, default: Any) -> Any:
    try:
        return fn()
    except Exception:  # a scrape must never fail because one figure is not ready yet
        return default


def build_registry(daemon: MetricsHost) -> tuple[CollectorRegistry, DaemonCollector]:
    from prometheus_client import ProcessCollector

    reg = CollectorRegistry(auto_describe=False)
    col = DaemonCollector(daemon)
    reg.register(col)
    ProcessCollector(namespace="gateway_agent", registry=reg)
    return reg, col


def _db_snapshot(store: Store) -> dict[str, Any]:
    return {
        "outbox": store.outbox_stats(),
        "outputs": store.queue_stats(),
        "db_size_bytes": store.size_bytes(),
        "time": time.time(),
    }


async def serve_metrics(daemon: MetricsHost, stop: asyncio.Event) -> None:
    """Serve /metrics on cfg.metrics.listen until `stop`. A busy port is logged and retried, never
    fatal: metrics are an aid, the radio path must keep running."""
    listen = daemon.cfg.metrics.listen
    if listen is None:
        await stop.wait()
        return
    host, port = listen
    reg, col = build_registry(daemon)
    server = None
    while server is None and not stop.is_set():
        try:
            server, _thread = start_http_server(port, addr=host, registry=reg)
            log_event(log, logging.INFO, "metrics_listening", listen=f"{host}:{port}")
        except OSError as e:
            log_event(
                log,
                logging.ERROR,
                "metrics_failed",
                listen=f"{host}:{port}",
                error=e.strerror or str(e),
                retry_s=RETRY_S,
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=RETRY_S)
            except TimeoutError:
                pass
    try:
        while not stop.is_set():
            try:
                col.snapshot = await daemon.st.call(_db_snapshot, daemon.store)
            except Exception as e:  # a failing refresh keeps the previous snapshot
                log_event(log, logging.WARNING, "metrics_refresh_failed", error=str(e))
            try:
                await asyncio.wait_for(stop.wait(), timeout=REFRESH_S)
            except TimeoutError:
                pass
    finally:
        if server is not None:
            # shutdown() blocks until serve_forever returns (<= its 0.5 s poll): off the loop.
            await asyncio.get_running_loop().run_in_executor(None, server.shutdown)
            server.server_close()
