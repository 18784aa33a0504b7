"""`type = "webhook"`: each row's JSON (the same body as the MQTT message: reading, alert or
event) POSTed to `url`, one request per row, in order (a consumer handles one message per
request, as it would from MQTT).

Headers: `Content-Type: application/json`, `X-Gateway-Agent-Kind: up|alert|event`,
`X-Gateway-Agent-Id: <message id>` (delivery is at least once: consumers dedup on it) and, with
`secret_file`, `X-Gateway-Agent-Signature: sha256=<hex HMAC-SHA256 of the body bytes>`.
2xx: delivered; 400-class refusals: dropped and counted; 5xx, 429, timeouts: retried with
backoff, in order (http.py says which status means what).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.outputs.http import DONE, REFUSED, HttpLink, read_secret
from gateway_agent.outputs.worker import Delivery, OutputDown, SinkContext
from gateway_agent.store import QueueRow

SIGNATURE = "X-Gateway-Agent-Signature"
KIND = "X-Gateway-Agent-Kind"
ID = "X-Gateway-Agent-Id"


def signature(secret: bytes, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSink:
    def __init__(self, cfg: OutputConfig, ctx: SinkContext) -> None:
        self.cfg = cfg
        self.link = HttpLink(cfg.timeout_s)
        self.secret: bytes | None = None

    async def open(self) -> None:
        if self.cfg.secret_file is not None and self.secret is None:
            self.secret = read_secret(self.cfg.secret_file).encode()
        await self.link.open()

    def headers(self, row: QueueRow, body: bytes) -> dict[str, str]:
        h = {"Content-Type": "application/json", KIND: row.kind, ID: row.msg_id}
        if self.secret is not None:
            h[SIGNATURE] = signature(self.secret, body)
        return h

    async def deliver(self, rows: Sequence[QueueRow]) -> Delivery:
        """Row by row, stopping at the first that cannot land now: nothing behind it overtakes
        it (the worker offers it again after a pause)."""
        out = Delivery()
        for r in rows:
            body = r.body.encode() if isinstance(r.body, str) else r.body
            try:
                got = await self.link.post(self.cfg.url, body, self.headers(r, body))
            except OutputDown:
                if out.done or out.refused:
                    return out
                raise
            if got.verdict == DONE:
                out.done.append(r.seq)
            elif got.verdict == REFUSED:
                out.refused.append(r.seq)
                out.refused_reason = got.reason
            elif out.done or out.refused:
                return out
            else:
                raise OutputDown(got.reason)
        return out

    async def close(self) -> None:
        await self.link.close()


def make_sink(cfg: OutputConfig, ctx: SinkContext) -> WebhookSink:
    return WebhookSink(cfg, ctx)
