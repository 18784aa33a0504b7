"""The relay's MQTT connections to the broker ChirpStack reads.

- `Link`: the data connection. Relayed frames are published through its PUBACK window (by the
  lane's sink), stats and acks go out on it, and `{prefix}/gateway/+/command/down` comes in on
  it. It reconnects with backoff on its own; the lane's worker only waits for it.
- `Presence`: one small connection per radio gateway holding that gateway's last will. MQTT has
  one will per connection, and ChirpStack wants `state/conn` per gateway: with a connection per
  gateway (as ChirpStack's MQTT Forwarder has), a backhaul cut or a killed agent marks every
  gateway behind it OFFLINE at the broker, and a clean stop says so explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from gateway_agent.config import UpstreamConfig
from gateway_agent.errors import UpstreamError
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.metrics import Counters
from gateway_agent.upstream.client import first_leaf, mqtt_client
from gateway_agent.upstream.pacing import Backoff
from gateway_agent.upstream.window import Window, raise_if_lost

log = logging.getLogger("gateway_agent.relay")
_MQTT_LOG = logging.getLogger("gateway_agent.relay.mqtt")
_MQTT_LOG.setLevel(logging.WARNING)
ERRORS = (aiomqtt.MqttError, UpstreamError, OSError, ssl.SSLError)
STABLE_S = 10.0  # a connection up this long resets the backoff


def make_client(
    cfg: UpstreamConfig, identifier: str, will: aiomqtt.Will | None, inflight: int
) -> aiomqtt.Client:
    return mqtt_client(cfg, identifier, inflight=inflight, will=will, logger=_MQTT_LOG)


async def _until_lost(client: aiomqtt.Client, stop: asyncio.Event) -> None:
    """Return when `stop` is set; raise when the connection drops."""
    lost = getattr(client, "_disconnected", None)
    waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
    if isinstance(lost, asyncio.Future):
        waits.append(lost)
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waits[0].cancel()
    if not stop.is_set():
        raise_if_lost(client)


class Link:
    """The data connection: window, command subscription, reconnects."""

    def __init__(
        self,
        cfg: UpstreamConfig,
        identifier: str,
        command_topic: str,
        on_command: Callable[[str, bytes], None],
        counters: Counters,
        inflight: int,
    ) -> None:
        self.cfg = cfg
        self.identifier = identifier
        self.command_topic = command_topic
        self.on_command = on_command
        self.counters = counters
        self.inflight = inflight
        self.client: aiomqtt.Client | None = None
        self.window: Window | None = None
        self.last_error: str | None = "not connected yet"
        self.connects = 0
        self.on_up: Callable[[], Awaitable[None]] | None = None  # after each connect
        self.before_close: Callable[[], Awaitable[None]] | None = None  # at a clean stop
        self._backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        self._limit = RateLimitedLog(log, window_s=10.0)

    def publish_now(self, topic: str, payload: bytes, retain: bool = False) -> bool:
        """Best effort, QoS 0 or 1 without waiting (stats, acks): False when not connected."""
        c = self.client
        if c is None:
            return False
        info = c._client.publish(topic, payload, 1, retain)
        return bool(info.rc == 0)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            up_at: float | None = None
            try:
                client = make_client(self.cfg, self.identifier, None, 0)
                async with client:
                    up_at = time.monotonic()
                    await self._session(client, stop)
            except BaseExceptionGroup as eg:
                e = first_leaf(eg)
                if not isinstance(e, ERRORS):
                    raise
                self._down(e)
            except ERRORS as e:
                self._down(e)
            finally:
                if self.window is not None:
                    self.window.close()
                self.client = self.window = None
            if stop.is_set():
                break
            if up_at is not None and time.monotonic() - up_at >= STABLE_S:
                self._backoff.reset()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._backoff.next_delay())

    def _down(self, e: BaseException) -> None:
        self.last_error = str(e) or type(e).__name__
        self.counters.inc("relay_link_errors")
        self._limit.warn("relay_disconnected", key=type(e).__name__, error=self.last_error)

    async def _session(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        await client.subscribe(self.command_topic, qos=1)
        self.client, self.window = client, Window(client, self.inflight)  # in flight at most
        self.last_error = None
        self.connects += 1
        self.counters.inc("relay_connects")
        log_event(log, logging.INFO, "relay_connected", host=self.cfg.host, port=self.cfg.port)
        if self.on_up is not None:
            await self.on_up()
        reader = asyncio.ensure_future(self._read(client))
        try:
            await _until_lost(client, stop)
            if reader.done():
                reader.result()  # the reader's error, if it ended
        finally:
            if stop.is_set() and self.before_close is not None:
                with contextlib.suppress(*ERRORS):
                    await self.before_close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, *ERRORS):
                await reader

    async def _read(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            try:
                self.on_command(str(m.topic), payload)
            except Exception:
                self.counters.internal_error("relay_command")
                self._limit.exception("relay_command_failed", key="cmd")


class Presence:
    """One radio gateway's presence connection: ONLINE retained on connect, the will OFFLINE."""

    def __init__(
        self,
        cfg: UpstreamConfig,
        identifier: str,
        topic: str,
        online: bytes,
        offline: bytes,
        counters: Counters,
    ) -> None:
        self.cfg, self.identifier, self.topic = cfg, identifier, topic
        self.online, self.offline = online, offline
        self.counters = counters
        self.connected = False
        self.gone = asyncio.Event()  # set to say OFFLINE and end (the gateway went quiet)
        self._backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)

    async def run(self, stop: asyncio.Event) -> None:
        end = asyncio.Event()
        relay_stop = asyncio.ensure_future(stop.wait())
        gone = asyncio.ensure_future(self.gone.wait())
        for f in (relay_stop, gone):
            f.add_done_callback(lambda _: end.set())
        try:
            while not end.is_set():
                try:
                    await self._session(end)
                except BaseExceptionGroup as eg:
                    if not isinstance(first_leaf(eg), ERRORS):
                        raise
                except ERRORS:
                    pass
                finally:
                    self.connected = False
                if end.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(end.wait(), self._backoff.next_delay())
        finally:
            relay_stop.cancel()
            gone.cancel()

    async def _session(self, end: asyncio.Event) -> None:
        will = aiomqtt.Will(self.topic, self.offline, qos=1, retain=True)
        async with make_client(self.cfg, self.identifier, will, 8) as client:
            await client.publish(self.topic, self.online, qos=1, retain=True, timeout=10)
            self.connected = True
            self._backoff.reset()
            await _until_lost(client, end)
            await client.publish(self.topic, self.offline, qos=1, retain=True, timeout=2)
