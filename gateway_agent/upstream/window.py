"""The QoS 1 PUBACK window: publishes in flight on one MQTT connection, which of them the broker
has acknowledged, and noticing a dropped link or a PUBACK that never comes."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt

from gateway_agent.upstream.pacing import resolve

Msg = tuple[list[int], str, bytes]  # (outbox seqs, topic, payload)


def raise_if_lost(client: aiomqtt.Client) -> None:
    """aiomqtt resolves its (private) `_disconnected` future when the link drops; an idle
    forwarder would otherwise keep saying "connected" until its next publish."""
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done():
        exc = None if fut.cancelled() else fut.exception()  # retrieved: no "never retrieved" noise
        raise aiomqtt.MqttError(f"connection lost: {exc}" if exc else "connection lost")


class Window:
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
            resolve(w)

    def full(self) -> bool:
        return len(self.pending) >= self.size

    def publish(self, seqs: list[int], topic: str, payload: bytes, retain: bool = False) -> None:
        info = self.paho.publish(topic, payload, 1, retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise_if_lost(self.client)
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        self.pending[info.mid] = (seqs, time.monotonic())

    def check(self) -> None:
        """Raise if the link dropped or the oldest publish waits for its PUBACK too long."""
        raise_if_lost(self.client)
        if self.pending:
            sent = next(iter(self.pending.values()))[1]
            if time.monotonic() - sent > self.timeout_s:
                raise aiomqtt.MqttError("Operation timed out")

    async def wait(self, timeout_s: float) -> None:
        """Until a PUBACK arrives, the link drops or `timeout_s` passes; then `check()`."""
        w: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(w)
        timer = self._loop.call_later(timeout_s, resolve, w)
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
