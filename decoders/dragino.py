"""Dragino fixed-layout codecs (FORMATS.md 5.4, 6.12, 6.13 LAQ4). Pure. The fPort selects the
layout: only port 2 (measurements) is in scope, anything else is an error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decoders.binary import Reader, require_length, require_port
from decoders.registry import codec
from decoders.types import Decoded, Draft
from gateway_agent.errors import CodecError

INVALID_DISTANCE = 20  # the TTN LDDS codec's "invalid reading" value


def _ldds(f_port: int, payload: bytes, settings: Mapping[str, Any], name: str) -> Decoded:
    require_port(f_port, (2,))
    require_length(payload, 8)
    r = Reader(payload)
    d = Draft()
    d.value("battery_v", (r.u16be() & 0x3FFF) / 1000)
    distance = r.u16be()
    if distance == 0:
        d.flag("sensor_absent", True)
    elif distance == INVALID_DISTANCE:
        d.flag("invalid_reading", True)
    else:
        d.value(name, distance)
    d.flag("interrupt", r.u8() != 0)
    probe = r.s16be()
    # 0x0000 is "no probe" and also a real 0.0 degC: trust it only when a probe is fitted.
    if probe != 0 or settings.get("ds18b20_fitted") is True:
        d.value("ds18b20_temperature_c", probe / 10)
    d.flag("sensor_detected", r.u8() == 1)
    return d.build()


@codec(
    "dragino/ldds20",
    vendor="Dragino",
    models=("LDDS20",),
    device_class=("gully", "bin"),
    f_ports=(2,),
)
def ldds20(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    """Under-tank sensor: the value is a level. Settings: `ds18b20_fitted` (bool)."""
    return _ldds(f_port, payload, settings, "level_mm")


@codec(
    "dragino/ldds75",
    vendor="Dragino",
    models=("LDDS75",),
    device_class=("bin", "gully"),
    f_ports=(2,),
)
def ldds75(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    """Same frame as the LDDS20 but looking down from above: the value is a distance."""
    return _ldds(f_port, payload, settings, "distance_mm")


@codec("dragino/laq4", vendor="Dragino", models=("LAQ4",), device_class="co2", f_ports=(2,))
def laq4(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    require_port(f_port, (2,))
    require_length(payload, 11)
    r = Reader(payload)
    d = Draft()
    d.value("battery_v", r.u16be() / 1000)
    status = r.u8()
    mode = status >> 2 & 0x1F
    d.meta["work_mode"] = mode
    d.flag("alarm", status & 1 == 1)
    if mode == 1:
        d.value("tvoc_ppb", r.u16be())
        d.value("co2_ppm", r.u16be())
        d.value("temperature_c", r.s16be() / 10)
        d.value("humidity_pct", r.u16be() / 10)
    elif mode == 31:  # threshold echo: configuration, not measurements
        d.meta.update(
            temperature_min_c=r.s8(),
            temperature_max_c=r.s8(),
            humidity_min_pct=r.u8(),
            humidity_max_pct=r.u8(),
            co2_min_ppm=r.u16be(),
            co2_max_ppm=r.u16be(),
        )
    else:
        raise CodecError(f"unknown work mode {mode}", reason="codec_mode")
    return d.build()
