"""Cayenne LPP (FORMATS.md section 7). Pure. Big-endian; keys keep the channel number; an
unknown type stops decoding (4.2), a record running past the end is a frame error (4.1)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from decoders.binary import Reader
from decoders.registry import codec
from decoders.types import Decoded, Draft

Handler = Callable[[Reader, Draft, int], None]


def _one(pattern: str, read: Callable[[Reader], int], div: float = 1) -> Handler:
    def h(r: Reader, d: Draft, ch: int) -> None:
        raw = read(r)
        d.value(pattern.format(ch), raw / div if div != 1 else raw)

    return h


def _xyz(pattern: str, div: float) -> Handler:
    def h(r: Reader, d: Draft, ch: int) -> None:
        for axis in "xyz":
            d.value(pattern.format(ch, axis), r.s16be() / div)

    return h


def _gps(r: Reader, d: Draft, ch: int) -> None:
    d.value(f"gps_{ch}_latitude_deg", r.s24be() / 10000)
    d.value(f"gps_{ch}_longitude_deg", r.s24be() / 10000)
    d.value(f"gps_{ch}_altitude_m", r.s24be() / 100)


TYPES: Mapping[int, tuple[int, Handler]] = {
    0x00: (1, _one("digital_in_{}", Reader.u8)),
    0x01: (1, _one("digital_out_{}", Reader.u8)),
    0x02: (2, _one("analog_in_{}", Reader.s16be, 100)),
    0x03: (2, _one("analog_out_{}", Reader.s16be, 100)),
    0x65: (2, _one("illuminance_{}_lux", Reader.u16be)),
    0x66: (1, _one("presence_{}", Reader.u8)),
    0x67: (2, _one("temperature_{}_c", Reader.s16be, 10)),
    0x68: (1, _one("humidity_{}_pct", Reader.u8, 2)),
    0x71: (6, _xyz("accelerometer_{}_{}_g", 1000)),
    0x73: (2, _one("pressure_{}_hpa", Reader.u16be, 10)),
    0x86: (6, _xyz("gyrometer_{}_{}_dps", 100)),
    0x88: (9, _gps),
}


@codec("cayenne-lpp", vendor="myDevices", models=("Cayenne LPP",), device_class="other")
def cayenne_lpp(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    """Channel keys stay in the output; alias them per device with `field_map`."""
    d = Draft()
    r = Reader(payload)
    while r.remaining:
        start = r.pos
        channel, kind = r.u8(), r.u8()
        entry = TYPES.get(kind)
        if entry is None:
            d.stop(f"unknown LPP type {kind} on channel {channel} at offset {start}")
            break
        size, handler = entry
        handler(Reader(r.take(size)), d, channel)
    return d.build()
