"""MQTT store-and-forward: the outbox table is the queue; a row is deleted only after PUBACK.

One connection loop with capped exponential backoff and full jitter; inside it a sliding window of
QoS 1 publishes (aiomqtt's `publish` returns on PUBACK). Alerts and events go before readings.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import operator
import random
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiomqtt
import paho.mqtt.client as mqtt

from gateway_agent.config import UpstreamConfig
from gateway_agent.errors import StoreError, UpstreamError
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.metrics import Counters
from gateway_agent.store import PRIO_EVENT, PRIO_READING, OutboxRow, Store
from gateway_agent.upstream.formats import BATCH_TOPIC, dumps, event_message
from gateway_agent.upstream.wire import encode_batch, encode_single

log = logging.getLogger(__name__)
T = TypeVar("T")
StoreCall = Callable[..., Awaitable[Any]]
_MQTT_LOG = logging.getLogger("gateway_agent.mqtt")
_MQTT_LOG.setLevel(logging.ERROR)  # aiomqtt warns per pending publish: a log storm on an SD card
_UPSTREAM_ERRORS = (aiomqtt.MqttError, UpstreamError, OSError, ssl.SSLError)


def _raise_if_lost(client: aiomqtt.Client) -> None:
    """aiomqtt resolves its (private) `_disconnected` future when the link drops; an idle
    forwarder would otherwise keep saying "connected" until its next publish."""
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done():
        exc = None if fut.cancelled() else fut.exception()  # retrieved: no "never retrieved" noise
        raise aiomqtt.MqttError(f"connection lost: {exc}" if exc else "connection lost")


_Msg = tuple[list[int], str, bytes]  # (outbox seqs, topic, payload)


class _Nudge:
    """A wake-up flag for one waiting coroutine without a task per wait (unlike wait_for)."""

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self, *_: Any) -> None:
        self._flag = True
        if self._waiter is not None:
            _resolve(self._waiter)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout_s: float) -> None:
        if self._flag:
            self._flag = False
            return
        loop = asyncio.get_running_loop()
        self._waiter = w = loop.create_future()
        timer = loop.call_later(timeout_s, _resolve, w)
        try:
            await w
        finally:
            timer.cancel()
            self._waiter = None
            self._flag = False


def _resolve(w: asyncio.Future[None]) -> None:
    if not w.done():
        w.set_result(None)


class _Window:
    """QoS 1 publishes straight through aiomqtt's paho client, PUBACKs tracked by paho's
    `on_publish` callback: no future, event or task per message (aiomqtt's per-publish plumbing
    cost more than paho itself). aiomqtt still owns the connection and its own publishes."""

    def __init__(self, client: aiomqtt.Client, size: int, timeout_s: float = 30.0) -> None:
        self.client = client
        self.paho = client._client
        self.size = size
        self.timeout_s = timeout_s
        self.pending: dict[int, tuple[list[int], float]] = {}  # mid -> (outbox seqs, sent at)
        self.acked: list[int] = []  # seqs whose PUBACK arrived, not yet deleted
        self.rejected: list[str] = []  # MQTT 5 PUBACK reason codes >= 0x80 (still a PUBACK)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._waiters: list[asyncio.Future[None]] = []  # the sender and the pump
        self._prev: Any = self.paho.on_publish  # aiomqtt's callback (paho types a union)
        self.paho.on_publish = self._on_publish
        lost = getattr(client, "_disconnected", None)
        self._lost = lost if isinstance(lost, asyncio.Future) else None
        if self._lost is not None:
            self._lost.add_done_callback(self._wake)

    def _on_publish(self, c: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        if threading.get_ident() != self._thread:  # paho runs in the loop thread under aiomqtt
            self._loop.call_soon_threadsafe(self._on_publish, c, userdata, mid, rc, props)
            return
        entry = self.pending.pop(mid, None)
        if entry is None:  # one of aiomqtt's own publishes (status)
            if self._prev is not None:
                self._prev(c, userdata, mid, rc, props)
            return
        if getattr(rc, "is_failure", False):
            self.rejected.append(str(rc))
        self.acked.extend(entry[0])
        self._wake()

    def _wake(self, *_: Any) -> None:
        for w in self._waiters:
            _resolve(w)

    def full(self) -> bool:
        return len(self.pending) >= self.size

    def publish(self, seqs: list[int], topic: str, payload: bytes) -> None:
        info = self.paho.publish(topic, payload, 1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            _raise_if_lost(self.client)
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        self.pending[info.mid] = (seqs, time.monotonic())

    def check(self) -> None:
        """Raise if the link dropped or the oldest publish waits for its PUBACK too long."""
        _raise_if_lost(self.client)
        if self.pending:
            sent = next(iter(self.pending.values()))[1]
            if time.monotonic() - sent > self.timeout_s:
                raise aiomqtt.MqttError("Operation timed out")

    async def wait(self, timeout_s: float) -> None:
        """Until a PUBACK arrives, the link drops or `timeout_s` passes; then `check()`."""
        w: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(w)
        timer = self._loop.call_later(timeout_s, _resolve, w)
        try:
            await w
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(w)
        self.check()

    def close(self) -> None:
        self.paho.on_publish = self._prev
        if self._lost is not None:
            self._lost.remove_done_callback(self._wake)
        self._wake()


def _first_leaf(eg: BaseExceptionGroup[BaseException]) -> BaseException:
    e: BaseException = eg
    while isinstance(e, BaseExceptionGroup):
        e = e.exceptions[0]
    return e


# Acked rows wait at most this long for an ingest commit to carry their delete.
DELETE_EVERY_S = 2.0
URGENT_EVERY_S = 1.0  # alerts and events stored by anything that does not call notify_commit
STABLE_CONNECTION_S = 10.0  # a connection must live this long after CONNACK to reset backoff


def _tls_hint(e: BaseException) -> str | None:
    """Name what went wrong in a TLS handshake so the log line says what to fix."""
    text = f"{type(e).__name__} {e} {e.__cause__ or ''}".lower()
    if isinstance(e, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
        return "server_certificate_not_trusted"
    if any(
        k in text
        for k in (
            "certificate required",
            "bad certificate",
            "unknown ca",
            "certificate unknown",
            "alert_certificate",
            "decrypt error",
            "access denied",
        )
    ):
        return "client_certificate_refused"
    if isinstance(e, ssl.SSLError) or "ssl" in text:
        return "tls_handshake_failed"
    return None


def read_password(cfg: UpstreamConfig) -> str | None:
    if cfg.password_file is None:
        return None
    try:
        return cfg.password_file.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise UpstreamError(f"cannot read upstream.password_file: {e.strerror}") from e


def tls_context(cfg: UpstreamConfig) -> ssl.SSLContext | None:
    if not cfg.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
        if cfg.cert_file and cfg.key_file:
            ctx.load_cert_chain(str(cfg.cert_file), str(cfg.key_file))
    except (OSError, ssl.SSLError) as e:
        raise UpstreamError(f"TLS setup failed: {e}") from e
    if cfg.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def probe_tls(cfg: UpstreamConfig) -> str | None:
    """One TLS handshake plus a 1 s read: returns a `_tls_hint` token if the broker refuses us."""
    try:
        ctx = tls_context(cfg)
        if ctx is None:
            return None
        with (
            socket.create_connection((cfg.host, cfg.port), timeout=3) as raw,
            ctx.wrap_socket(raw, server_hostname=cfg.host) as s,
        ):
            s.settimeout(1.0)
            try:
                data = s.recv(1)
            except TimeoutError:
                return None  # the broker waits for CONNECT: the certificate was accepted
            return "client_certificate_refused" if data == b"" else None
    except (ssl.SSLError, UpstreamError) as e:
        return _tls_hint(e) or "tls_handshake_failed"
    except OSError:
        return None


class Backoff:
    """Exponential backoff with full jitter: sleep uniform(0, min(cap, base * 2**n))."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.attempt = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class RateLimiter:
    """Token bucket for the upstream message-rate ceiling (0 = unlimited)."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate = rate_per_s
        self.tokens = max(1.0, rate_per_s)
        self.last = time.monotonic()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            now = time.monotonic()
            self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class Forwarder:
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

    # -- topics --------------------------------------------------------------------------

    def topic(self, suffix: str) -> str:
        return f"{self.cfg.topic_prefix}/{self.gateway_id}/{suffix}"

    def _status_payload(self, state: str) -> bytes:
        body = {"state": state, "gatewayId": self.gateway_id, "time": time.time()}
        if state == "online":
            body.update(self.status_figures())
        return dumps(body).encode()

    def _client(self) -> aiomqtt.Client:
        proto = (
            aiomqtt.ProtocolVersion.V5
            if self.cfg.mqtt_version == "5"
            else aiomqtt.ProtocolVersion.V311
        )
        return aiomqtt.Client(
            self.cfg.host,
            self.cfg.port,
            identifier=self.cfg.client_id or f"gateway-agent-{self.gateway_id}",
            username=self.cfg.username,
            password=read_password(self.cfg),
            protocol=proto,
            keepalive=self.cfg.keepalive_s,
            clean_session=None if proto == aiomqtt.ProtocolVersion.V5 else True,
            will=aiomqtt.Will(
                self.topic("status"), self._status_payload("offline"), qos=1, retain=True
            ),
            tls_context=tls_context(self.cfg),
            max_inflight_messages=self.cfg.inflight,
            max_queued_outgoing_messages=0,
            timeout=10,
            logger=_MQTT_LOG,
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
                        self.topic("status"),
                        self._status_payload("online"),
                        qos=1,
                        retain=True,
                        timeout=10,
                    )
                    await self.report_drops()
                    await self._drain(client, stop)
                    if stop.is_set():
                        await client.publish(
                            self.topic("status"),
                            self._status_payload("offline"),
                            qos=1,
                            retain=True,
                            timeout=2,
                        )
            except BaseExceptionGroup as eg:
                e = _first_leaf(eg)
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
            _, pending = await asyncio.wait(
                waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED
            )
            for w in waiters:
                w.cancel()

    async def _note_error(self, e: BaseException) -> None:
        self.last_error = str(e) or type(e).__name__
        self.counters.inc("upstream_errors")
        hint = _tls_hint(e) if self.cfg.tls else None
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
        """Publish outbox rows with up to `inflight` awaiting PUBACK. A sender task keeps the
        window full from two lanes (alerts/events first, then readings) while this loop reads
        the outbox, encodes and deletes acked rows, so store calls never leave the window idle.
        Readings go by seq (= FCnt order per device) from a cursor: one indexed range read per
        round; alerts and events are fetched every round and overtake readings."""
        window = self.cfg.inflight
        win = _Window(client, window)
        acked = win.acked
        busy: set[int] = set()  # alerts/events queued or published here and not yet deleted
        waiting: list[int] = []  # acked, delete deferred to the next commit: still busy
        urgent_lane: collections.deque[_Msg] = collections.deque()
        reading_lane: collections.deque[_Msg] = collections.deque()
        chunk = max(window * 4, 128)  # rows per outbox read; the lane holds one to two reads
        defer_rows = window * (self.cfg.batch_max if self.cfg.format == "cbor" else 1)
        if self.cfg.format == "cbor" and self.cfg.batch_max > 1:
            chunk = (
                -(-max(chunk, 4 * self.cfg.batch_max) // self.cfg.batch_max) * self.cfg.batch_max
            )
        lane_rows = [0]  # readings queued in reading_lane
        next_status = time.monotonic() + self.cfg.status_interval_s
        tasks: set[asyncio.Task[None]] = set()
        nudge = _Nudge()  # sender -> pump: the reading lane runs low
        feed = _Nudge()  # pump -> sender: something was queued

        async def delete_acked() -> None:
            if acked:
                done = list(acked)
                try:
                    # At most a window of messages' rows wait for the next ingest commit, so a
                    # crash resends at most two windows (256 measured no faster for JSON:
                    # hil/bench/drain.py; a CBOR batch is many rows to one message).
                    await self.store_call(self.store.outbox_delete, done, defer_rows)
                except StoreError as e:  # disk full: keep them busy, retry on the next round
                    self._limit.warn("outbox_delete_failed", reason=e.reason, rows=len(done))
                    return
                del acked[: len(done)]
                self._count_published(len(done))
                if busy:
                    waiting.extend([s for s in done if s in busy])
            if waiting and not self.store.deferred_deletes():
                busy.difference_update(waiting)  # gone from the table: never fetched again
                waiting.clear()

        async def sender() -> None:
            limited = self._limiter.rate > 0
            while True:
                if urgent_lane:
                    msg = urgent_lane.popleft()
                elif reading_lane:
                    msg = reading_lane.popleft()
                    lane_rows[0] -= len(msg[0])
                    if lane_rows[0] < chunk:
                        nudge.set()
                else:
                    nudge.set()
                    await feed.wait(1.0)
                    continue
                while win.full():
                    await win.wait(1.0)
                if limited:
                    await self._limiter.acquire()
                win.publish(*msg)

        def queue(lane: collections.deque[_Msg], msgs: list[_Msg]) -> None:
            # Only alerts and events are re-read every round, so only their seqs need to stay
            # busy until deleted; readings are read once, behind a cursor that only moves on
            # (keeping every drained reading's seq here grew ~10 MB over a 1M backlog).
            if lane is reading_lane:
                for m in msgs:
                    lane_rows[0] += len(m[0])
            else:
                for m in msgs:
                    busy.update(m[0])
            lane.extend(msgs)
            feed.set()

        async def pump(send_task: asyncio.Task[None]) -> None:
            nonlocal next_status
            last_flush = time.monotonic()
            cursor = 0  # seq of the last reading queued on this connection
            next_urgent = 0.0
            self._urgent_due = True
            ahead: asyncio.Future[tuple[int, int, list[_Msg]]] | None = None  # next read
            deleting: asyncio.Future[None] | None = None  # one delete at a time

            def read(after: int) -> tuple[int, int, list[_Msg]]:
                """On the store thread: the next readings, encoded there too. Encoding here on
                the loop thread starved the read: sqlite3 takes the GIL back row by row, and
                waits a switch interval (5 ms) for it each time while this thread encodes."""
                rows = self.store.outbox_fetch_readings(chunk, after)
                if not rows:
                    return after, 0, []
                return rows[-1][0], len(rows), self._reading_messages(rows)

            def fetch(after: int) -> asyncio.Future[tuple[int, int, list[_Msg]]]:
                f = asyncio.ensure_future(self.store_call(read, after))
                io.add(f)
                f.add_done_callback(io.discard)
                return f

            while True:
                if send_task.done():
                    send_task.result()  # the sender's error (link lost, timeout) ends the drain
                    raise aiomqtt.MqttError("sender stopped")
                win.check()
                if win.rejected:  # MQTT 5: a PUBACK that says no still ends the publish
                    self.counters.inc("upstream_rejected", len(win.rejected))
                    self._limit.warn("upstream_rejected", key="rejected", reason=win.rejected[-1])
                    win.rejected.clear()
                tasks.difference_update([t for t in tasks if t.done()])
                if stop.is_set():
                    break
                while not self._live.empty():
                    suffix, body = self._live.get_nowait()
                    fmt = self.cfg.format
                    queue(urgent_lane, [([], self.topic(suffix), encode_single(body, fmt))])
                if time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.cfg.status_interval_s
                    tasks.add(asyncio.create_task(self._publish_status(client), name="status"))
                # Alerts and events are looked for after a commit, and every second besides:
                # a store round trip each drain round was a third of a CBOR drain's time.
                urgent: list[OutboxRow] = []
                if self._urgent_due or time.monotonic() >= next_urgent:
                    self._urgent_due = False
                    next_urgent = time.monotonic() + URGENT_EVERY_S
                    limit = 64 + len(busy)
                    urgent = await self.store_call(self.store.outbox_fetch_urgent, limit)
                    if len(urgent) >= limit:
                        self._urgent_due = True  # more behind these
                    urgent = [r for r in urgent if r.seq not in busy]
                if urgent:
                    queue(urgent_lane, self._messages(urgent))
                got = 0  # readings queued this round
                # Refill before the sender runs dry; the next read is already on the store
                # thread while this one is encoded here (waiting for reads bound the drain).
                if ahead is None and lane_rows[0] < 2 * chunk:
                    ahead = fetch(cursor)
                if ahead is not None and (ahead.done() or lane_rows[0] < chunk):
                    cursor, got, msgs = await ahead
                    ahead = None
                    if got:
                        if lane_rows[0] + got < 2 * chunk:
                            ahead = fetch(cursor)
                        queue(reading_lane, msgs)
                # Deletes are write transactions (an fsync each under FULL): group them, one
                # at a time, beside the reads.
                if acked and (deleting is None or deleting.done()):
                    if deleting is not None:
                        deleting.result()  # an unexpected store error ends the drain
                    deleting = asyncio.ensure_future(delete_acked())
                    io.add(deleting)
                    deleting.add_done_callback(io.discard)
                if self._unreadable:
                    await self._drop_unreadable()
                if got or urgent:
                    continue
                if lane_rows[0] >= chunk:  # enough queued: wait for the sender
                    nudge.clear()
                    await nudge.wait(0.05)
                    continue
                self.wake.clear()
                if time.monotonic() - last_flush > DELETE_EVERY_S:
                    last_flush = time.monotonic()
                    with contextlib.suppress(StoreError):
                        await self.store_call(self.store.outbox_delete, [], 0, self.delete_after_s)
                if win.pending or acked or reading_lane or urgent_lane:
                    await win.wait(0.005)
                    continue
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=1.0)
                except TimeoutError:
                    pass
                _raise_if_lost(client)  # idle: notice a dead link now, not at the next publish
            # Stop: nothing new goes out; wait (bounded) for in-flight PUBACKs; unacked rows
            # stay in the outbox.
            send_task.cancel()
            deadline = time.monotonic() + 2.0
            while win.pending and time.monotonic() < deadline:
                await win.wait(0.01)
            await settle()
            await delete_acked()
            with contextlib.suppress(StoreError):
                await self.store_call(self.store.outbox_delete, [])

        io: set[asyncio.Future[Any]] = set()  # reads and deletes on the store thread

        async def settle() -> None:
            """Wait for the store calls in flight (a failed one has said so already)."""
            for f in list(io):
                with contextlib.suppress(BaseException):
                    await f
            io.clear()

        send_task = asyncio.create_task(sender(), name="sender")
        send_task.add_done_callback(nudge.set)
        try:
            await pump(send_task)
        finally:
            send_task.cancel()
            with contextlib.suppress(BaseException):
                await send_task
            await settle()
            for t in tasks:
                t.cancel()
            win.close()
            # Rows acked before the link died must not be resent: delete them whatever happened.
            if acked:
                done = list(acked)
                acked.clear()
                with contextlib.suppress(StoreError):  # else resent later: same ids
                    await self.store_call(self.store.outbox_delete, done)
                self._count_published(len(done))

    def _count_published(self, n: int) -> None:
        self.published += n
        self.counters.inc("upstream_published", n)

    def event_row(self, kind: str, data: dict[str, Any]) -> Any:
        """An outbox row for the `events` topic (an `OutboxTuple`)."""
        now = time.time()
        eid = f"{self.gateway_id}:event:{kind}:{int(now * 1000)}"
        body = dumps(event_message(eid, kind, now, data))
        return (PRIO_EVENT, "event", None, "events", eid, body, now, time.monotonic())

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
                self.topic("status"), self._status_payload("online"), qos=1, retain=True, timeout=30
            )
        except aiomqtt.MqttError as e:
            log_event(log, logging.DEBUG, "status_publish_failed", error=str(e))

    def _messages(self, rows: list[OutboxRow]) -> list[_Msg]:
        """Alerts and events one per message, then the readings among `rows`."""
        out = [
            m
            for r in rows
            if r.priority != PRIO_READING and (m := self._single(r.seq, r.topic, r.body))
        ]
        readings = [(r.seq, r.topic, r.body) for r in rows if r.priority == PRIO_READING]
        return out + self._reading_messages(readings) if readings else out

    def _reading_messages(self, rows: list[ReadingRow]) -> list[_Msg]:
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
        out: list[_Msg] = []

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

    def _single(self, seq: int, topic: str, body: str | bytes) -> _Msg | None:
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
