"""The project's one error hierarchy. Imports nothing.

`reason` is a short, stable snake_case token: it doubles as a counter label and a log field.
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    reason: str = "agent_error"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or (reason or self.reason))
        if reason is not None:
            self.reason = reason


class BadInput(AgentError):
    """Input from the outside world that we refuse: counted, logged (rate-limited), never fatal."""

    reason = "bad_input"


class FrameError(BadInput):
    """A datagram, PHYPayload, join message or serial line that does not parse."""

    reason = "malformed"


class CodecError(BadInput):
    """A codec could not decode a payload (bad length, unknown fPort, JS throw/timeout/OOM)."""

    reason = "codec"

    def __init__(
        self, message: str = "", *, codec: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.codec = codec


class SerialLineError(BadInput):
    reason = "serial_bad_line"


class ConfigError(AgentError):
    """A configuration problem. `key_path` names the offending key, e.g. `sources[1].listen`."""

    reason = "config"

    def __init__(self, key_path: str, message: str) -> None:
        super().__init__(f"{key_path}: {message}" if key_path else message)
        self.key_path = key_path
        self.detail = message


class StoreError(AgentError):
    reason = "store"


class DiskFullError(StoreError):
    reason = "disk_full"


class UpstreamError(AgentError):
    reason = "upstream"


class ControlError(AgentError):
    """The daemon's control socket is unreachable or answered with an error."""

    reason = "control"
