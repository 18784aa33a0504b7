"""The `mqtt` output: QoS 1 publishes to a broker of its own; a row is done only on PUBACK.

`layout = "agent"`: today's topics and bodies (`{topic_prefix}/{gateway_id}/devices/{dev_eui}/up`
and `/alert`, `{topic_prefix}/{gateway_id}/events`), the row body as it is.
`layout = "chirpstack"`: ChirpStack v4's integration topics and JSON (chirpstack_events.py,
imported only then: it needs the `chirpstack` extra).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.outputs.mqttlink import MqttLink, Publish
from gateway_agent.outputs.worker import Delivery, SinkContext
from gateway_agent.store import QueueRow

# a row -> [(topic, payload, retain)]; raises on a body it cannot read
Messages = list[tuple[str, bytes, bool]]
Encode = Callable[[QueueRow], Messages]


def body_text(row: QueueRow) -> str:
    b: Any = row.body
    return b.decode("utf-8") if isinstance(b, bytes) else str(b)


def client_id(cfg: OutputConfig, ctx: SinkContext) -> str:
    """The configured client id, else one per output (never the upstream's: the broker would
    drop one of two connections with the same id)."""
    assert cfg.mqtt is not None
    return cfg.mqtt.client_id or f"gateway-agent-{ctx.gateway_id}-{cfg.name}"


class RowSink:
    """A sink whose rows each become zero or more messages on one `MqttLink`. A row whose body
    cannot be read is refused (dropped, counted as `unreadable`); a row that makes no message
    is done at once."""

    refused_reason = "unreadable"

    def __init__(self, link: MqttLink, encode: Encode, bad: tuple[type[Exception], ...]) -> None:
        self.link = link
        self.encode = encode
        self.bad = bad

    async def open(self) -> None:
        await self.link.open()

    async def deliver(self, rows: Sequence[QueueRow]) -> Delivery:
        msgs: list[Publish] = []
        empty: list[int] = []
        refused: list[int] = []
        for r in rows:
            try:
                out = self.encode(r)
            except self.bad:
                refused.append(r.seq)
                continue
            if not out:
                empty.append(r.seq)
            msgs.extend(Publish(r.seq, t, p, retain) for t, p, retain in out)
        got = await self.link.send(msgs) if msgs else Delivery()
        got.done.extend(empty)
        got.refused, got.refused_reason = refused, self.refused_reason
        return got

    async def close(self) -> None:
        await self.link.close()


def agent_encoder(prefix: str, gateway_id: str) -> Encode:
    base = f"{prefix}/{gateway_id}"

    def encode(r: QueueRow) -> Messages:
        text = body_text(r)
        if r.kind in ("up", "alert"):
            if not r.dev_eui:
                raise ValueError("no dev_eui")
            return [(f"{base}/devices/{r.dev_eui}/{r.kind}", text.encode(), False)]
        return [(f"{base}/events", text.encode(), False)]

    return encode


def chirpstack_encoder(cfg: OutputConfig) -> tuple[Encode, tuple[type[Exception], ...]]:
    from gateway_agent.outputs.chirpstack_events import BAD_BODY, ChirpstackEvents

    events = ChirpstackEvents(cfg.application_id, cfg.application_name)

    def encode(r: QueueRow) -> Messages:
        body = json.loads(body_text(r))
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        m = events.message(r.kind, body)
        return [] if m is None else [(m[0], m[1].encode(), False)]

    return encode, BAD_BODY


def make_sink(cfg: OutputConfig, ctx: SinkContext) -> RowSink:
    assert cfg.mqtt is not None  # config/outputs.py gives every MQTT type its connection
    link = MqttLink(cfg.mqtt, client_id(cfg, ctx), cfg.timeout_s)
    if cfg.layout == "chirpstack":
        encode, bad = chirpstack_encoder(cfg)
        return RowSink(link, encode, bad)
    return RowSink(link, agent_encoder(cfg.mqtt.topic_prefix, ctx.gateway_id), (ValueError,))
