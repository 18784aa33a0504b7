"""Value types shared across the house: devices, readings, alerts. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.lorawan.sessionid import reading_id
from gateway_agent.secret import Secret

DEVICE_CLASSES = ("co2", "legionella", "bin", "gully", "other")
__all__ = ["DEVICE_CLASSES", "Alert", "Device", "Reading", "reading_id"]


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def _check_len(name: str, value: bytes | None, n: int) -> None:
    if value is not None and (not isinstance(value, bytes) or len(value) != n):
        raise ValueError(f"{name} must be {n} bytes")


@dataclass(frozen=True, slots=True)
class Device:
    """A provisioned device. Identifiers are bytes in the order people write them."""

    dev_eui: bytes
    name: str = ""
    device_class: str = "other"
    codec: str | None = None
    tags: tuple[str, ...] = ()
    # Per-device settings for codecs/derivations (mount_height_mm, empty_distance_mm, ...)
    settings: Mapping[str, Any] = field(default_factory=_empty)
    # ABP
    dev_addr: bytes | None = None
    nwk_s_key: Secret | None = None
    app_s_key: Secret | None = None
    # OTAA
    join_eui: bytes | None = None
    app_key: Secret | None = None
    relaxed_fcnt: bool = False

    def __post_init__(self) -> None:
        _check_len("dev_eui", self.dev_eui, 8)
        _check_len("dev_addr", self.dev_addr, 4)
        _check_len("join_eui", self.join_eui, 8)
        for k in ("nwk_s_key", "app_s_key", "app_key"):
            s = getattr(self, k)
            if s is not None and (not isinstance(s, Secret) or len(s.reveal_bytes()) != 16):
                raise ValueError(f"{k} must be a 16-byte Secret")
        if self.device_class not in DEVICE_CLASSES:
            raise ValueError(f"class must be one of {', '.join(DEVICE_CLASSES)}")
        if not isinstance(self.settings, MappingProxyType):
            object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    @property
    def activation(self) -> str:
        return "otaa" if self.app_key is not None else "abp"


@dataclass(frozen=True, slots=True)
class Reading:
    """One accepted, decrypted, decoded uplink. `id` names the frame whichever agent heard it:
    `{dev_eui}-{session tag}-{fcnt32}` (reading_id, lorawan/sessionid.py; DESIGN.md invariant 2)."""

    id: str
    dev_eui: bytes
    dev_addr: bytes
    fcnt: int
    f_port: int | None
    payload: bytes
    time: float  # Unix epoch seconds (wall clock as read by the shell)
    time_valid: bool = True
    confirmed: bool = False
    codec: str | None = None
    measurements: Mapping[str, float] = field(default_factory=_empty)
    flags: Mapping[str, Any] = field(default_factory=_empty)
    extras: Mapping[str, Any] = field(default_factory=_empty)
    object: Mapping[str, Any] = field(default_factory=_empty)  # the codec's own output
    decode_error: str | None = None
    rx: tuple[RxInfo, ...] = ()

    def __post_init__(self) -> None:
        _check_len("dev_eui", self.dev_eui, 8)
        _check_len("dev_addr", self.dev_addr, 4)
        for k in ("measurements", "flags", "extras", "object"):
            v = getattr(self, k)
            if not isinstance(v, MappingProxyType):
                object.__setattr__(self, k, MappingProxyType(dict(v)))


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert raised or cleared by a rule (DESIGN.md `devices/{dev_eui}/alert`)."""

    id: str
    dev_eui: bytes
    rule: str
    state: str  # "raised" | "cleared"
    severity: str  # "info" | "warning" | "critical"
    measurement: str | None
    value: float | None
    time: float
    message: str = ""

    def __post_init__(self) -> None:
        _check_len("dev_eui", self.dev_eui, 8)
        if self.state not in ("raised", "cleared"):
            raise ValueError("state must be raised or cleared")
