"""ChirpStack's gRPC API, for passive mode's sessions: `DeviceService.GetActivation` through the
`chirpstack-api` stubs over grpc.aio. grpc and chirpstack-api (extra `chirpstack`) are imported
here only, when a session fetch is configured. The API token rides in each call's metadata and
never reaches a log line or an exception text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_agent.errors import AgentError
from gateway_agent.secret import Secret

CALL_TIMEOUT_S = 10.0


class ApiError(AgentError):
    """The API did not answer with an activation. `reason`: unreachable (UNAVAILABLE, deadline
    exceeded: keep the cache, back off), unauthenticated / denied (the token), error (other)."""

    def __init__(self, reason: str, code: str, detail: str = "") -> None:
        super().__init__(f"chirpstack api: {reason} ({code})", reason=reason)
        self.code = code
        self.detail = detail[:200]  # gRPC's own words (a TLS handshake failure, ...)


@dataclass(frozen=True, slots=True)
class Activation:
    """A device's session as ChirpStack holds it (LoRaWAN 1.0.x: one NwkSKey). Keys secret."""

    dev_eui: bytes
    dev_addr: bytes
    nwk_s_key: bytes
    app_s_key: bytes
    f_cnt_up: int  # ChirpStack's: the next uplink counter it expects

    def __repr__(self) -> str:
        return (
            f"Activation(dev_eui={self.dev_eui.hex()}, dev_addr={self.dev_addr.hex()}, "
            f"f_cnt_up={self.f_cnt_up}, keys=<redacted>)"
        )


class Unusable(Exception):
    """An activation this agent cannot decode with (`reason`: lorawan_1_1, no_app_s_key, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_token(path: Path) -> Secret:
    """The API token from its file (mode 0600, checked by preflight), surrounding space cut."""
    return Secret(path.read_text(encoding="utf-8").strip())


def activation_from(msg: Any, dev_eui: bytes) -> Activation | None:
    """A `GetDeviceActivationResponse` -> Activation; None when the device has none yet.
    Raises Unusable for a session this agent cannot decode with."""
    if not msg.HasField("device_activation"):
        return None
    a = msg.device_activation
    if not a.dev_addr:
        return None
    nwk_hex = a.f_nwk_s_int_key or a.nwk_s_enc_key
    if a.s_nwk_s_int_key and a.s_nwk_s_int_key != nwk_hex:
        raise Unusable("lorawan_1_1")  # separate integrity keys: a 1.1 session
    if not a.app_s_key:
        raise Unusable("no_app_s_key")  # held by a join server (KEK-wrapped)
    try:
        addr = bytes.fromhex(a.dev_addr)
        nwk = bytes.fromhex(nwk_hex)
        app = bytes.fromhex(a.app_s_key)
    except ValueError:
        raise Unusable("bad_hex") from None
    if len(addr) != 4 or len(nwk) != 16 or len(app) != 16:
        raise Unusable("bad_length")
    return Activation(dev_eui, addr, nwk, app, int(a.f_cnt_up))


class ActivationClient:
    """One channel to ChirpStack's API; `activation(dev_eui)` per device."""

    def __init__(
        self,
        server: str,
        token: Secret,
        tls: bool = False,
        ca_file: Path | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        import grpc
        from chirpstack_api import api

        self._grpc = grpc
        self._api = api
        self.server = server
        self._token = token
        self.timeout_s = timeout_s
        if tls:
            roots = ca_file.read_bytes() if ca_file is not None else None
            creds = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.aio.secure_channel(server, creds)
        else:
            self._channel = grpc.aio.insecure_channel(server)
        self._stub = api.DeviceServiceStub(self._channel)

    async def activation(self, dev_eui: bytes) -> Activation | None:
        """The device's current activation; None when ChirpStack has none (NOT_FOUND: not
        joined yet, or not a device there). Raises ApiError, Unusable."""
        grpc = self._grpc
        req = self._api.GetDeviceActivationRequest(dev_eui=dev_eui.hex())
        meta = (("authorization", "Bearer " + str(self._token.reveal())),)
        try:
            resp = await self._stub.GetActivation(req, metadata=meta, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as e:
            code = e.code()
            if code == grpc.StatusCode.NOT_FOUND:
                return None
            reason = {
                grpc.StatusCode.UNAVAILABLE: "unreachable",
                grpc.StatusCode.DEADLINE_EXCEEDED: "unreachable",
                grpc.StatusCode.UNAUTHENTICATED: "unauthenticated",
                grpc.StatusCode.PERMISSION_DENIED: "denied",
            }.get(code, "error")
            raise ApiError(reason, code.name, str(e.details() or "")) from None
        return activation_from(resp, dev_eui)

    async def close(self) -> None:
        await self._channel.close()
