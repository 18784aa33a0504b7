"""Milesight channel-record codecs (FORMATS.md 5.1, 6.1, 6.4, 6.6-6.8, 6.10, 6.13). Pure.

Records are keyed on (channel, type) per model; values are little-endian. An unknown pair
stops decoding (rule 4.2); a known record cut short is an error (rule 4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from decoders.binary import Reader
from decoders.records import Handler, flag, number
from decoders.registry import codec
from decoders.types import Decoded, Draft

Table = Mapping[tuple[int, int], tuple[int, Handler]]

ALARMS = {0: "threshold_release", 1: "threshold", 2: "mutation"}


def _alarm(raw: int, d: Draft) -> str:
    if raw in ALARMS:
        return ALARMS[raw]
    d.warn(f"unknown alarm byte {raw}")
    return f"unknown_{raw}"


def _info(name: str, n: int) -> Handler:
    def h(r: Reader, d: Draft) -> None:
        d.meta[name] = r.take(n).hex()

    return h


def _temp_alarm(name: str, alarm_flag: str) -> Handler:
    def h(r: Reader, d: Draft) -> None:
        d.value(name, r.s16le() / 10)
        d.flag(alarm_flag, _alarm(r.u8(), d))

    return h


def _temp_change_alarm(name: str, change: str, alarm_flag: str) -> Handler:
    def h(r: Reader, d: Draft) -> None:
        d.value(name, r.s16le() / 10)
        d.value(change, r.s16le() / 100)
        d.flag(alarm_flag, _alarm(r.u8(), d))

    return h


def _with_bool(name: str, read: Callable[[Reader], float], flag_name: str) -> Handler:
    def h(r: Reader, d: Draft) -> None:
        d.value(name, read(r))
        d.flag(flag_name, r.u8() != 0)

    return h


def _history(fields: Callable[[Reader, dict[str, Any]], None]) -> Handler:
    def h(r: Reader, d: Draft) -> None:
        record: dict[str, Any] = {"timestamp": r.u32le()}
        fields(r, record)
        d.history.append(record)

    return h


def _u16(r: Reader) -> int:
    return r.u16le()


def _temp(r: Reader) -> float:
    return r.s16le() / 10


COMMON: Table = {
    (0x01, 0x75): (1, number("battery_pct", Reader.u8)),
    (0xFF, 0x01): (1, _info("protocol_version", 1)),
    (0xFF, 0x09): (2, _info("hardware_version", 2)),
    (0xFF, 0x0A): (2, _info("firmware_version", 2)),
    (0xFF, 0x0B): (1, _info("device_status", 1)),
    (0xFF, 0x0F): (1, _info("lorawan_class", 1)),
    (0xFF, 0x16): (8, _info("serial_number", 8)),
    (0xFF, 0xFE): (1, _info("reset_event", 1)),
    (0xFF, 0xFF): (2, _info("tsl_version", 2)),
}
TEMP_0367 = (2, number("temperature_c", Reader.s16le, 10))
HUMIDITY_0468 = (1, number("humidity_pct", Reader.u8, 2))


def walk(payload: bytes, table: Table) -> Draft:
    """Decode a run of Milesight records with one model's table."""
    d = Draft()
    r = Reader(payload)
    while r.remaining:
        start = r.pos
        channel, kind = r.u8(), r.u8()
        entry = table.get((channel, kind))
        if entry is None:
            d.stop(f"unknown record {channel:02x} {kind:02x} at offset {start}")
            break
        size, handler = entry
        sub = Reader(r.take(size))
        handler(sub, d)
    return d


def _am319_history(r: Reader, rec: dict[str, Any]) -> None:
    rec["temperature_c"] = r.s16le() / 10
    rec["humidity_pct"] = r.u16le() / 2
    rec["occupied"] = r.u8() != 0
    rec["light_level"] = r.u8()
    rec["co2_ppm"] = r.u16le()
    rec["tvoc_raw"] = r.u16le()
    rec["pressure_hpa"] = r.u16le() / 10
    rec["pm2_5_ugm3"] = r.u16le()
    rec["pm10_ugm3"] = r.u16le()
    rec["hcho_mgm3"] = r.u16le() / 100


AM319: Table = {
    **COMMON,
    (0x03, 0x67): TEMP_0367,
    (0x04, 0x68): HUMIDITY_0468,
    (0x05, 0x00): (1, flag("occupied")),
    (0x06, 0xCB): (1, number("light_level", Reader.u8)),
    (0x07, 0x7D): (2, number("co2_ppm", Reader.u16le)),
    (0x08, 0x7D): (2, number("tvoc_raw", Reader.u16le)),
    (0x08, 0xE6): (2, number("tvoc_ugm3", Reader.u16le)),
    (0x09, 0x73): (2, number("pressure_hpa", Reader.u16le, 10)),
    (0x0A, 0x7D): (2, number("hcho_mgm3", Reader.u16le, 100)),
    (0x0B, 0x7D): (2, number("pm2_5_ugm3", Reader.u16le)),
    (0x0C, 0x7D): (2, number("pm10_ugm3", Reader.u16le)),
    (0x0D, 0x7D): (2, number("o3_ppm", Reader.u16le, 100)),
    (0x0E, 0x01): (1, flag("buzzer_on")),
}
# The 22-byte history layout exists only from the 2025 firmware on (FORMATS.md 6.1 quirks).
AM319_2025: Table = {**AM319, (0x20, 0xCE): (22, _history(_am319_history))}


@codec(
    "milesight/am319",
    vendor="Milesight",
    models=("AM319", "AM307", "AM103"),
    device_class="co2",
    aliases=("milesight/am307", "milesight/am103"),
)
def am319(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    """Settings: `firmware_generation = "2025"` enables the `20 CE` history record."""
    table = AM319_2025 if str(settings.get("firmware_generation", "")) == "2025" else AM319
    return walk(payload, table).build()


EM500_CO2: Table = {
    **COMMON,
    (0x03, 0x67): TEMP_0367,
    (0x04, 0x68): HUMIDITY_0468,
    (0x05, 0x7D): (2, number("co2_ppm", Reader.u16le)),
    (0x06, 0x73): (2, number("pressure_hpa", Reader.u16le, 10)),
}


@codec("milesight/em500-co2", vendor="Milesight", models=("EM500-CO2",), device_class="co2")
def em500_co2(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, EM500_CO2).build()


_TS_KINDS = {1: "threshold", 2: "threshold_release", 3: "mutation"}


def _ts_word(rec: dict[str, Any], nibble: int, word: bytes, probe: int) -> None:
    temp_key = "temperature_c" if probe == 1 else "temperature_2_c"
    if 1 <= nibble <= 4:
        rec[temp_key] = int.from_bytes(word, "little", signed=True) / 10
        if nibble in _TS_KINDS:
            rec[f"temperature_{probe}_alarm"] = _TS_KINDS[nibble]
    elif nibble in (5, 6):
        rec[f"magnet_{probe}_open"] = int.from_bytes(word, "little") != 0
        if nibble == 5:
            rec["alarm"] = True


def _ts_history(r: Reader, rec: dict[str, Any]) -> None:
    mask = r.u8()
    w1, w2 = r.take(2), r.take(2)
    _ts_word(rec, mask >> 4, w1, 1)
    _ts_word(rec, mask & 0x0F, w2, 2)


TS30X: Table = {
    **COMMON,
    (0x03, 0x67): TEMP_0367,
    (0x04, 0x67): (2, number("temperature_2_c", Reader.s16le, 10)),
    (0x03, 0x00): (1, flag("magnet_1_open")),
    (0x04, 0x00): (1, flag("magnet_2_open")),
    (0x83, 0x67): (3, _temp_alarm("temperature_c", "temperature_1_alarm")),
    (0x84, 0x67): (3, _temp_alarm("temperature_2_c", "temperature_2_alarm")),
    (0x93, 0xD7): (
        5,
        _temp_change_alarm("temperature_c", "temperature_change_c", "temperature_1_alarm"),
    ),
    (0x94, 0xD7): (
        5,
        _temp_change_alarm("temperature_2_c", "temperature_2_change_c", "temperature_2_alarm"),
    ),
    (0x20, 0xCE): (9, _history(_ts_history)),
}


@codec(
    "milesight/ts302",
    vendor="Milesight",
    models=("TS302", "TS301"),
    device_class="legionella",
    aliases=("milesight/ts301",),
)
def ts302(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, TS30X).build()


EM500_PT100: Table = {**COMMON, (0x03, 0x67): TEMP_0367}


@codec(
    "milesight/em500-pt100", vendor="Milesight", models=("EM500-PT100",), device_class="legionella"
)
def em500_pt100(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, EM500_PT100).build()


EM310_UDL: Table = {
    **COMMON,
    (0x03, 0x82): (2, number("distance_mm", Reader.u16le)),
    (0x04, 0x00): (1, flag("tilt")),
    (0xFF, 0x06): (9, _info("distance_alarm_config", 9)),  # 2025 codec: config reply
}


@codec("milesight/em310-udl", vendor="Milesight", models=("EM310-UDL",), device_class="bin")
def em310_udl(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, EM310_UDL).build()


EM400: Table = {
    **COMMON,
    (0x03, 0x67): TEMP_0367,
    (0x04, 0x82): (2, number("distance_mm", Reader.u16le)),
    (0x05, 0x00): (1, flag("tilt")),
    (0x83, 0x67): (3, _with_bool("temperature_c", _temp, "temperature_abnormal")),
    (0x84, 0x82): (3, _with_bool("distance_mm", _u16, "distance_alarm")),
}


@codec(
    "milesight/em400-mud",
    vendor="Milesight",
    models=("EM400-MUD", "EM400-TLD", "EM400-UDL"),
    device_class="bin",
    aliases=("milesight/em400-tld", "milesight/em400-udl"),
)
def em400_mud(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, EM400).build()


def _udl_history(r: Reader, rec: dict[str, Any]) -> None:
    rec["distance_mm"] = r.u16le()


EM500_UDL: Table = {
    **COMMON,
    (0x03, 0x82): (2, number("distance_mm", Reader.u16le)),
    (0x20, 0xCE): (6, _history(_udl_history)),
}


@codec("milesight/em500-udl", vendor="Milesight", models=("EM500-UDL",), device_class="gully")
def em500_udl(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, EM500_UDL).build()


def _swl_history(r: Reader, rec: dict[str, Any]) -> None:
    rec["level_mm"] = r.u16le() * 10


EM500_SWL: Table = {
    **COMMON,
    (0x03, 0x77): (2, lambda r, d: d.value("level_mm", r.u16le() * 10)),  # vendor: centimetres
    (0x20, 0xCE): (6, _history(_swl_history)),
}


@codec("milesight/em500-swl", vendor="Milesight", models=("EM500-SWL",), device_class="gully")
def em500_swl(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, EM500_SWL).build()
