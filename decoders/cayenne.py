"""Cayenne LPP (FORMATS.md section 7). Pure. Big-endian; keys keep the channel number; an
unknown type stops decoding (4.2), a record running past the end is a frame error (4.1)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decoders.registry import codec
from decoders.types import Decoded, Draft
from gateway_agent.errors import CodecError

# type -> (record size, signed, divisor, key pattern); 3-axis and GPS records split their bytes.
_SCALAR: Mapping[int, tuple[int, bool, float, str]] = {
    0x00: (1, False, 1, "digital_in_{}"),
    0x01: (1, False, 1, "digital_out_{}"),
    0x02: (2, True, 100, "analog_in_{}"),
    0x03: (2, True, 100, "analog_out_{}"),
    0x65: (2, False, 1, "illuminance_{}_lux"),
    0x66: (1, False, 1, "presence_{}"),
    0x67: (2, True, 10, "temperature_{}_c"),
    0x68: (1, False, 2, "humidity_{}_pct"),
    0x73: (2, False, 10, "pressure_{}_hpa"),
}
# type -> (axis size, divisor, key pattern with channel and axis/part)
_MULTI: Mapping[int, tuple[int, float, tuple[str, ...], str]] = {
    0x71: (2, 1000, ("x", "y", "z"), "accelerometer_{}_{}_g"),
    0x86: (2, 100, ("x", "y", "z"), "gyrometer_{}_{}_dps"),
}
_GPS = 0x88
_NAMES: dict[tuple[int, int], str] = {}  # (type, channel) -> key: at most 9 x 256 strings


def _name(kind: int, channel: int) -> str:
    name = _NAMES.get((kind, channel))
    if name is None:
        name = _NAMES[(kind, channel)] = _SCALAR[kind][3].format(channel)
    return name


def _short(need: int, pos: int, have: int) -> CodecError:
    return CodecError(
        f"frame too short: need {need} byte(s) at offset {pos}, have {have}", reason="codec_short"
    )


@codec("cayenne-lpp", vendor="myDevices", models=("Cayenne LPP",), device_class="other")
def cayenne_lpp(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    """Channel keys stay in the output; alias them per device with `field_map`."""
    d = Draft()
    pos, end = 0, len(payload)
    frm = int.from_bytes
    while pos < end:
        if pos + 2 > end:
            raise _short(1, pos + 1, end - pos - 1)
        channel, kind = payload[pos], payload[pos + 1]
        start, pos = pos, pos + 2
        scalar = _SCALAR.get(kind)
        if scalar is not None:
            size, signed, div, _ = scalar
            if pos + size > end:
                raise _short(size, pos, end - pos)
            raw = frm(payload[pos : pos + size], "big", signed=signed)
            d.value(_name(kind, channel), raw / div if div != 1 else raw)
            pos += size
        elif kind in _MULTI:
            part, div, axes, pattern = _MULTI[kind]
            if pos + part * len(axes) > end:
                raise _short(part * len(axes), pos, end - pos)
            for axis in axes:
                d.value(
                    pattern.format(channel, axis),
                    frm(payload[pos : pos + part], "big", signed=True) / div,
                )
                pos += part
        elif kind == _GPS:
            if pos + 9 > end:
                raise _short(9, pos, end - pos)
            for suffix, div in (
                ("latitude_deg", 10000),
                ("longitude_deg", 10000),
                ("altitude_m", 100),
            ):
                d.value(
                    f"gps_{channel}_{suffix}", frm(payload[pos : pos + 3], "big", signed=True) / div
                )
                pos += 3
        else:
            d.stop(f"unknown LPP type {kind} on channel {channel} at offset {start}")
            break
    return d.build()
