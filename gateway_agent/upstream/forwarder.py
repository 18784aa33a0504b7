"""MQTT store-and-forward: the outbox table is the queue; a row is deleted only after PUBACK.

One connection loop with capped exponential backoff and full jitter; inside it a drain (drain.py)
over a sliding window of QoS 1 publishes (window.py). Alerts and events go before readings.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiomqtt

from gateway_agent.config import UpstreamConfig
from gateway_agent.errors import StoreError, UpstreamError
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.metrics import Counters
from gateway_agent.store import PRIO_EVENT, PRIO_READING, OutboxRow, Store
from gateway_agent.upstream.client import first_leaf, mqtt_client
from gateway_agent.upstream.drain import DELETE_EVERY_S, URGENT_EVERY_S, Drain
from gateway_agent.upstream.formats import (
    BATCH_TOPIC,
    EVENTS_TOPIC,
    STATUS_TOPIC,
    dumps,
    event_message,
    status_message,
)
from gateway_agent.upstream.pacing import Backoff, RateLimiter
from gateway_agent.upstream.tls import probe_tls, read_password, tls_context, tls_hint
from gateway_agent.upstream.window import Msg
from gateway_agent.upstream.wire import encode_batch, encode_single

# Importers use these names from here (daemon, doctor, tests, hil/bench).
__all__ = [
    "DELETE_EVERY_S",
    "STABLE_CONNECTION_S",
    "URGENT_EVERY_S",
    "Backoff",
    "Forwarder",
    "RateLimiter",
    "probe_tls",
    "read_password",
    "tls_context",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
StoreCall = Callable[..., Awaitable[Any]]
_UPSTREAM_ERRORS = (aiomqtt.MqttError, UpstreamError, OSError, ssl.SSLError)
STABLE_CONNECTION_S = 10.0  # a connection must live this long after CONNACK to reset backoff


class Forwarder:
    """The upstream link: connect (with backoff), announce status, drain the outbox, reconnect.
    Ingest calls notify_commit and publish_live; the daemon reads connected/published."""

    def __init__(
        self,
        cfg: UpstreamConfig,
        gateway_id: str,
        store: Store,
        store_call: StoreCall,
        counters: Counters,
        status_figures: Callable[[], dict[str, Any]] | None = None,
        delete_after_s: float = DELETE_EVERY_S,
    ) -> None:
        self.cfg = cfg
        # Acked rows wait for an ingest commit to carry their delete; written on their own only
        # after this long (the daemon: two commit windows), so a steady trickle of uplinks
        # never pays an fsync for deletes alone.
        self.delete_after_s = delete_after_s
        self.gateway_id = gateway_id
        self.store = store
        self.store_call = store_call
        self.counters = counters
        self.status_figures = status_figures or (lambda: {})
        self.wake = asyncio.Event()  # set by ingest after each commit (notify_commit)
        self._urgent_due = True  # alerts or events may be waiting in the outbox
        self._unreadable: list[int] = []  # seqs of rows the drain could not read
        self.connected = False
        self.last_error: str | None = None
        self.connected_since: float | None = None
        self.published = 0
        self._backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self._limiter = RateLimiter(cfg.rate_limit_per_s)
        self._retry = asyncio.Event()
        self._live: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=256)
        self._limit = RateLimitedLog(log, window_s=10.0)

    def retry_now(self) -> None:
        """Skip the current backoff wait (CLI `outbox retry`)."""
        self._backoff.reset()
        self._retry.set()
        self.notify_commit()

    def notify_commit(self) -> None:
        """New rows are in the outbox (ingest committed): alerts and events among them are
        looked for at the next drain round, readings as the cursor reaches them."""
        self._urgent_due = True
        self.wake.set()

    # -- topics and the client ----------------------------------------------------------

    def topic(self, suffix: str) -> str:
        return f"{self.cfg.topic_prefix}/{self.gateway_id}/{suffix}"

    def _status_payload(self, state: str) -> bytes:
        t = time.time()
        figures = self.status_figures() if state == "online" else {}
        return dumps(status_message(state, self.gateway_id, t, figures)).encode()

    def _client(self) -> aiomqtt.Client:
        return mqtt_client(
            self.cfg,
            self.cfg.client_id or f"gateway-agent-{self.gateway_id}",
            inflight=self.cfg.inflight,
            will=aiomqtt.Will(
                self.topic(STATUS_TOPIC), self._status_payload("offline"), qos=1, retain=True
            ),
        )

    # -- main loop -----------------------------------------------------------------------

    def publish_live(self, suffix: str, body_json: str) -> None:
        """Best effort, not stored: an alert whose commit failed (disk full) still goes out now."""
        if not self.connected:
            self.counters.inc("live_dropped")
            return
        try:
            self._live.put_nowait((suffix, body_json))
        except asyncio.QueueFull:
            self.counters.inc("live_dropped")
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        if not self.cfg.enabled:
            log_event(log, logging.INFO, "upstream_disabled")
            await stop.wait()
            return
        while not stop.is_set():
            up_since: float | None = None
            try:
                client = self._client()
                async with client:
                    up_since = time.monotonic()
                    await self._session(client, stop)
            except BaseExceptionGroup as eg:
                e = first_leaf(eg)
                if not isinstance(e, _UPSTREAM_ERRORS):
                    raise
                await self._note_error(e)
            except _UPSTREAM_ERRORS as e:
                await self._note_error(e)
            finally:
                self.connected = False
                while not self._live.empty():
                    self._live.get_nowait()
                    self.counters.inc("live_dropped")
            if stop.is_set():
                break
            await self._back_off(stop, up_since)

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """One connection: status online, the drop report, the drain; offline at a stop."""
        self.connected = True
        self.connected_since = time.time()
        self.last_error = None
        self.counters.inc("upstream_connects")
        log_event(
            log,
            logging.INFO,
            "upstream_connected",
            host=self.cfg.host,
            port=self.cfg.port,
            tls=self.cfg.tls,
            mqtt=self.cfg.mqtt_version,
        )
        await client.publish(
            self.topic(STATUS_TOPIC),
            self._status_payload("online"),
            qos=1,
            retain=True,
            timeout=10,
        )
        await self.report_drops()
        await self._drain(client, stop)
        if stop.is_set():
            await client.publish(
                self.topic(STATUS_TOPIC),
                self._status_payload("offline"),
                qos=1,
                retain=True,
                timeout=2,
            )

    async def _back_off(self, stop: asyncio.Event, up_since: float | None) -> None:
        """Wait before reconnecting, cut short by a stop or retry_now."""
        # Only a connection that stayed up after CONNACK resets the backoff: a broker that
        # accepts and drops at once (auth, ACL, overload) keeps backing off to the cap.
        if up_since is not None and time.monotonic() - up_since >= STABLE_CONNECTION_S:
            self._backoff.reset()
        delay = self._backoff.next_delay()
        log_event(log, logging.INFO, "upstream_retry", delay_s=round(delay, 2))
        self._retry.clear()
        waiters = {
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._retry.wait()),
        }
        _, pending = await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()

    async def _note_error(self, e: BaseException) -> None:
        self.last_error = str(e) or type(e).__name__
        self.counters.inc("upstream_errors")
        hint = tls_hint(e) if self.cfg.tls else None
        if self.cfg.tls and hint is None:
            # TLS 1.3 delivers the broker's verdict on our certificate after the handshake, and
            # paho reports only a timeout: ask once more with a bare TLS socket to name it.
            hint = await asyncio.get_running_loop().run_in_executor(None, probe_tls, self.cfg)
        if hint is not None:
            self.counters.inc("upstream_tls_errors", reason=hint)
            self._limit.warn(
                "upstream_tls_failed", key=f"tls:{hint}", reason=hint, error=self.last_error
            )
            return
        self._limit.warn(
            "upstream_disconnected", key=f"up:{type(e).__name__}", error=self.last_error
        )

    async def _drain(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        await Drain(self, client, stop).run()

    def _count_published(self, n: int) -> None:
        self.published += n
        self.counters.inc("upstream_published", n)

    def event_row(self, kind: str, data: dict[str, Any]) -> Any:
        """An outbox row for the `events` topic (an `OutboxTuple`)."""
        now = time.time()
        eid = f"{self.gateway_id}:event:{kind}:{int(now * 1000)}"
        body = dumps(event_message(eid, kind, now, data))
        return (PRIO_EVENT, "event", None, EVENTS_TOPIC, eid, body, now, time.monotonic())

    async def report_drops(self) -> None:
        """Drops recorded since the last report (disk cap, disk full, unreadable rows) become one
        `events` row: on connecting, first thing, and from the daemon's timers soon after a drop."""
        try:
            data = await self.store_call(
                self.store.report_drops, lambda d: self.event_row("data_dropped", d)
            )
        except StoreError as e:  # disk full: the counts stay in meta for the next try
            log_event(log, logging.WARNING, "drop_report_deferred", reason=e.reason)
            return
        if data:
            for k, v in data.items():
                if k != "reasons":
                    self.counters.inc("dropped", int(v), kind=k)
            log_event(
                log,
                logging.WARNING,
                "data_dropped",
                reasons=",".join(data.get("reasons", [])),
                **{k: v for k, v in data.items() if k != "reasons"},
            )

    async def _publish_status(self, client: aiomqtt.Client) -> None:
        try:
            await client.publish(
                self.topic(STATUS_TOPIC),
                self._status_payload("online"),
                qos=1,
                retain=True,
                timeout=30,
            )
        except aiomqtt.MqttError as e:
            log_event(log, logging.DEBUG, "status_publish_failed", error=str(e))

    def _messages(self, rows: list[OutboxRow]) -> list[Msg]:
        """Alerts and events one per message, then the readings among `rows`."""
        out = [
            m
            for r in rows
            if r.priority != PRIO_READING and (m := self._single(r.seq, r.topic, r.body))
        ]
        readings = [(r.seq, r.topic, r.body) for r in rows if r.priority == PRIO_READING]
        return out + self._reading_messages(readings) if readings else out

    def _reading_messages(self, rows: list[ReadingRow]) -> list[Msg]:
        """Readings (seq, topic, body) in seq order: one message each, or CBOR batches of up
        to `batch_max`, cut to fit `batch_max_bytes` (a stored CBOR item splices to about half
        its length, JSON text to about a quarter). A row that cannot be read (a damaged stored
        item) is set aside for `_drop_unreadable` instead of stopping the drain at it."""
        fmt = self.cfg.format
        most, cap = self.cfg.batch_max, self.cfg.batch_max_bytes
        if fmt != "cbor" or most <= 1:
            try:
                return [([seq], self.topic(t), encode_single(body, fmt)) for seq, t, body in rows]
            except ValueError:
                return [m for r in rows if (m := self._single(*r)) is not None]
        out: list[Msg] = []

        def encode(part: list[ReadingRow]) -> None:
            try:
                payload = encode_batch(list(map(_BODY, part)))
            except ValueError:
                if len(part) == 1:
                    self._single(*part[0])  # sets it aside
                    return
                payload = b""  # find it by halves
            if not payload or len(payload) > cap and len(part) > 1:
                half = len(part) // 2  # the estimate below was short (float-heavy objects)
                encode(part[:half])
                encode(part[half:])
                return
            out.append((list(map(_SEQ, part)), self.topic(BATCH_TOPIC), payload))

        for i in range(0, len(rows), most):
            chunk = rows[i : i + most]
            est = sum(map(len, map(_BODY, chunk))) >> (2 if type(chunk[0][2]) is str else 1)
            n = -(-est // cap)  # messages this chunk needs
            step = -(-len(chunk) // n)
            for j in range(0, len(chunk), step):
                encode(chunk[j : j + step])
        return out

    def _single(self, seq: int, topic: str, body: str | bytes) -> Msg | None:
        try:
            return ([seq], self.topic(topic), encode_single(body, self.cfg.format))
        except (ValueError, TypeError) as e:  # UnicodeError is a ValueError
            self._unreadable.append(seq)
            self._limit.warn("outbox_row_unreadable", seq=seq, error=str(e)[:80])
            return None

    async def _drop_unreadable(self) -> None:
        """Rows the drain could not read leave the outbox, counted as dropped (reason
        `unreadable`, reported upstream in the next `data_dropped` event)."""
        seqs, self._unreadable = self._unreadable, []
        try:
            await self.store_call(self.store.outbox_drop_unreadable, seqs)
        except StoreError:
            self._unreadable = seqs + self._unreadable  # disk full: try again later
            return
        self.counters.inc("dropped", len(seqs), kind="unreadable")


ReadingRow = tuple[int, str, "str | bytes"]  # seq, topic, body (Store.outbox_fetch_readings)
_SEQ = operator.itemgetter(0)
_BODY = operator.itemgetter(2)
