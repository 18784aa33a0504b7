"""Elsys type-record codec (FORMATS.md 5.2, 6.2). Pure. Big-endian; unknown type stops (4.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from decoders.binary import Reader
from decoders.records import Handler, flag, number
from decoders.registry import codec
from decoders.types import Decoded, Draft


def _accel(r: Reader, d: Draft) -> None:
    for axis in "xyz":
        d.value(f"accel_{axis}", r.s8())


def _ir(r: Reader, d: Draft) -> None:
    d.value("ir_internal_temperature_c", r.s16be() / 10)
    d.value("ir_external_temperature_c", r.s16be() / 10)


def _sound(r: Reader, d: Draft) -> None:
    d.value("sound_peak_db", r.u8())
    d.value("sound_average_db", r.u8())


def _external_2(r: Reader, d: Draft) -> None:
    # Type 19 may repeat: the first is probe 2, the next probe 3, ...
    n = 2
    while f"external_temperature_{n}_c" in d.extras:
        n += 1
    d.value(f"external_temperature_{n}_c", r.s16be() / 10)


TYPES: Mapping[int, tuple[int, Handler]] = {
    0x01: (2, number("temperature_c", Reader.s16be, 10)),
    0x02: (1, number("humidity_pct", Reader.u8)),
    0x03: (3, _accel),
    0x04: (2, number("illuminance_lux", Reader.u16be)),
    0x05: (1, number("motion_count", Reader.u8)),
    0x06: (2, number("co2_ppm", Reader.u16be)),
    0x07: (2, number("battery_v", Reader.u16be, 1000)),
    0x08: (2, number("analog_1_v", Reader.u16be, 1000)),
    0x0A: (2, number("pulse_count", Reader.u16be)),
    0x0B: (4, number("pulse_total_count", Reader.u32be)),
    0x0C: (2, number("external_temperature_c", Reader.s16be, 10)),
    0x0D: (1, flag("digital_input")),
    0x0E: (2, number("distance_mm", Reader.u16be)),
    0x0F: (1, number("accel_motion_count", Reader.u8)),
    0x10: (4, _ir),
    0x11: (1, flag("occupied")),
    0x12: (1, flag("water_leak")),
    0x14: (4, number("pressure_hpa", Reader.u32be, 1000)),
    0x15: (2, _sound),
    0x19: (2, _external_2),
    0x1C: (2, number("tvoc_ppb", Reader.u16be)),
}


@codec(
    "elsys/ers-co2",
    vendor="Elsys",
    models=("ERS CO2", "ERS CO2 Lite"),
    device_class="co2",
    aliases=("elsys/ers-co2-lite",),
)
def ers_co2(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    d = Draft()
    r = Reader(payload)
    while r.remaining:
        start = r.pos
        kind = r.u8()
        entry = TYPES.get(kind)
        if entry is None:
            d.stop(f"unknown type {kind:02x} at offset {start}")
            break
        size, handler = entry
        handler(Reader(r.take(size)), d)
    return d.build()
