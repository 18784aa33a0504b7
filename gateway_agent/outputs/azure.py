"""The `azure-iothub` output: MQTT 3.1.1 to `{hub}.azure-devices.net:8883` over TLS as one IoT
Hub device: client id = device id, username `{hub}.azure-devices.net/{device_id}/?api-version=
2021-04-12`, password a SAS token made from the device's key (renewed by reconnecting at 80 % of
`sas_ttl_s`), or X.509 (`cert_file`/`key_file`, no password). Each row goes to
`devices/{device_id}/messages/events/{property bag}`: `$.ct`/`$.ce` say JSON in UTF-8, `$.mid`
the agent's message id, `kind`, `devEui`, `gatewayId` are application properties."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from urllib.parse import quote

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.outputs.mqtt import Messages, RowSink, body_text
from gateway_agent.outputs.mqttlink import MqttLink
from gateway_agent.outputs.worker import Delivery, OutputDown, SinkContext
from gateway_agent.store import QueueRow

API_VERSION = "2021-04-12"
RENEW_AT = 0.8  # of the token's lifetime: reconnect with a new token then


def sas_token(resource_uri: str, key_b64: str, expiry: int) -> str:
    """IoT Hub's SAS token: `sig` = base64(HMAC-SHA256(base64decode(key), url-encoded
    resource URI + "\\n" + expiry)), url-encoded (Microsoft's "Control access to IoT Hub with
    shared access signatures", device-scoped token without a policy name)."""
    sr = quote(resource_uri, safe="")
    key = base64.b64decode(key_b64, validate=True)
    digest = hmac.new(key, f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()
    sig = quote(base64.b64encode(digest).decode(), safe="")
    return f"SharedAccessSignature sr={sr}&sig={sig}&se={expiry}"


def property_bag(props: dict[str, str]) -> str:
    """`k=v&k=v` with the values url-encoded (the keys are ours: `$.ct` must stay as it is)."""
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in props.items())


class AzureSink(RowSink):
    """RowSink with the device's credentials made per connection; `clock` (wall seconds) is
    injectable so a test can know the token the broker must accept."""

    def __init__(
        self, cfg: OutputConfig, ctx: SinkContext, clock: Callable[[], float] = time.time
    ) -> None:
        assert cfg.mqtt is not None
        self.cfg = cfg
        self.clock = clock
        self.fqdn = f"{cfg.hub}.azure-devices.net"
        self.username = f"{self.fqdn}/{cfg.device_id}/?api-version={API_VERSION}"
        self.resource = f"{self.fqdn}/devices/{cfg.device_id}"
        self.renew_at: float | None = None  # wall clock: the token in use is renewed then
        self.gateway_id = ctx.gateway_id
        link = MqttLink(cfg.mqtt, cfg.device_id, cfg.timeout_s)
        super().__init__(link, self.encode, (ValueError,))

    def password(self) -> str | None:
        """A fresh SAS token (None with X.509). Never logged; the key is read each time."""
        f = self.cfg.device_key_file
        if f is None:
            self.renew_at = None
            return None
        try:
            key = f.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise OutputDown(f"cannot read device_key_file: {type(e).__name__}") from e
        now = self.clock()
        expiry = int(now) + self.cfg.sas_ttl_s
        try:
            token = sas_token(self.resource, key, expiry)
        except (binascii.Error, ValueError) as e:
            raise OutputDown("device_key_file: not a base64 key") from e
        self.renew_at = now + RENEW_AT * self.cfg.sas_ttl_s
        return token

    async def open(self) -> None:
        await self.link.open(self.username, self.password())

    async def deliver(self, rows: Sequence[QueueRow]) -> Delivery:
        if self.renew_at is not None and self.clock() >= self.renew_at:
            await self.link.close()
            await self.open()
        return await super().deliver(rows)

    def topic(self, r: QueueRow) -> str:
        props = {"$.ct": "application/json", "$.ce": "utf-8", "$.mid": r.msg_id, "kind": r.kind}
        if r.dev_eui:
            props["devEui"] = r.dev_eui
        props["gatewayId"] = self.gateway_id
        return f"devices/{self.cfg.device_id}/messages/events/{property_bag(props)}"

    def encode(self, r: QueueRow) -> Messages:
        return [(self.topic(r), body_text(r).encode(), False)]


def make_sink(cfg: OutputConfig, ctx: SinkContext) -> AzureSink:
    return AzureSink(cfg, ctx)
