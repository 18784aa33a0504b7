"""One MQTT connection for an MQTT-based output (mqtt, homeassistant, azure-iothub, aws-iot):
connect with the output's TLS and credentials, publish QoS 1 through the upstream's PUBACK
window, and say which rows landed. A row is done only when every message it made was acked."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import aiomqtt

from gateway_agent.config import UpstreamConfig
from gateway_agent.errors import UpstreamError
from gateway_agent.outputs.worker import Delivery, OutputDown
from gateway_agent.upstream.client import mqtt_client
from gateway_agent.upstream.pacing import RateLimiter
from gateway_agent.upstream.tls import probe_tls, tls_hint
from gateway_agent.upstream.window import Window

_ERRORS = (aiomqtt.MqttError, UpstreamError, OSError, ssl.SSLError)


@dataclass(frozen=True, slots=True)
class Publish:
    """One message a row makes (`seq` = the row's; several messages may share it)."""

    seq: int
    topic: str
    payload: bytes
    retain: bool = False


def down_reason(e: BaseException) -> str:
    """What went wrong, for `outbox status` and the log (never a secret: paho's texts)."""
    hint = tls_hint(e)
    text = str(e) or type(e).__name__
    return f"{hint}: {text}" if hint else text


class MqttLink:
    """The connection: `open` (raises OutputDown), `send` publishes in order and returns what
    landed, `close`. Credentials are given per `open`, so a token can be renewed."""

    def __init__(
        self,
        cfg: UpstreamConfig,
        client_id: str,
        timeout_s: float = 10.0,
        will: aiomqtt.Will | None = None,
    ) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self.timeout_s = timeout_s
        self.will = will
        self.client: aiomqtt.Client | None = None
        self.window: Window | None = None
        self.limiter = RateLimiter(cfg.rate_limit_per_s)  # 0: unlimited

    async def open(self, username: str | None = None, password: str | None = None) -> None:
        cfg = self.cfg
        try:
            # credentials: the config's unless given (an Azure SAS token); the Window below keeps `inflight` unacked (paho's own limit: 0, none)
            client = mqtt_client(
                cfg,
                self.client_id,
                inflight=0,
                will=self.will,
                username=username,
                password=password,
                timeout_s=self.timeout_s,
            )
            await client.__aenter__()
        except _ERRORS as e:
            reason = down_reason(e)
            if cfg.tls and tls_hint(e) is None:
                # TLS 1.3 delivers the broker's verdict on our certificate after the handshake
                # and paho reports a timeout: one bare TLS probe names it (as the upstream does).
                hint = await asyncio.get_running_loop().run_in_executor(None, probe_tls, cfg)
                reason = f"{hint}: {reason}" if hint else reason
            raise OutputDown(reason) from e
        self.client = client
        self.window = Window(client, max(1, cfg.inflight), self.timeout_s)

    async def send(self, msgs: Sequence[Publish]) -> Delivery:
        """Publish `msgs` in order (at most `inflight` unacked), wait for their PUBACKs (at
        most `timeout_s` for the oldest). Rows whose every message was acked are done. Raises
        OutputDown when the link fails before anything landed."""
        w = self.window
        if w is None:
            raise OutputDown("not connected")
        need = Counter(m.seq for m in msgs)
        error: BaseException | None = None
        try:
            for m in msgs:
                while w.full():
                    await w.wait(1.0)
                await self.limiter.acquire()
                w.publish([m.seq], m.topic, m.payload, m.retain)
            deadline = time.monotonic() + self.timeout_s
            while w.pending and time.monotonic() < deadline:
                await w.wait(min(1.0, max(0.01, deadline - time.monotonic())))
        except _ERRORS as e:
            error = e
        got = Counter(w.acked)
        w.acked.clear()
        done = [s for s in need if got[s] >= need[s]]
        if error is not None and not done:
            raise OutputDown(down_reason(error)) from error
        return Delivery(done=done)

    async def publish_now(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """One message outside the rows (an availability `online`), acked before returning."""
        if self.client is None:
            raise OutputDown("not connected")
        try:
            await self.client.publish(topic, payload, qos=1, retain=retain, timeout=self.timeout_s)
        except _ERRORS as e:
            raise OutputDown(down_reason(e)) from e

    async def close(self) -> None:
        client, self.client = self.client, None
        if self.window is not None:
            self.window.close()
            self.window = None
        if client is not None:
            try:
                await client.__aexit__(None, None, None)
            except _ERRORS:
                pass  # the link was already gone
