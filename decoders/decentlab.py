"""Decentlab protocol v2 codecs (FORMATS.md 5.3, 6.3, 6.5, 6.9, 6.11). Pure. Big-endian words."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from decoders.binary import Reader
from decoders.registry import codec
from decoders.types import Decoded, Draft
from gateway_agent.errors import CodecError

# A group: (word count, fn(words, draft, settings)).
Group = tuple[int, Callable[[Sequence[int], Draft, Mapping[str, Any]], None]]


def _battery(w: Sequence[int], d: Draft, s: Mapping[str, Any]) -> None:
    d.value("battery_v", w[0] / 1000)


def walk(payload: bytes, groups: Sequence[Group], settings: Mapping[str, Any]) -> Draft:
    r = Reader(payload)
    version = r.u8()
    if version != 2:
        raise CodecError(f"protocol version {version}, expected 2", reason="codec_version")
    device_id = r.u16be()
    flags = r.u16be()
    d = Draft()
    d.meta["device_id"] = device_id
    if flags >> len(groups):
        d.warn(f"flag bits {flags:04x} name groups this model does not have; ignored")
    expected = 5 + 2 * sum(n for bit, (n, _) in enumerate(groups) if flags >> bit & 1)
    if len(payload) != expected:
        raise CodecError(
            f"frame length {len(payload)}, flags {flags:04x} need {expected}",
            reason="codec_length",
        )
    for bit, (n, fn) in enumerate(groups):
        if flags >> bit & 1:
            fn([r.u16be() for _ in range(n)], d, settings)
    return d


def _sht(w: Sequence[int], d: Draft, s: Mapping[str, Any]) -> None:
    d.value("temperature_c", 175.72 * w[0] / 65536 - 46.85)
    d.value("humidity_pct", 125 * w[1] / 65536 - 6)


def _baro(w: Sequence[int], d: Draft, s: Mapping[str, Any]) -> None:
    d.value("barometer_temperature_c", (w[0] - 5000) / 100)
    d.value("pressure_hpa", w[1] * 2 / 100)


def _lp8(w: Sequence[int], d: Draft, s: Mapping[str, Any]) -> None:
    d.value("co2_ppm", w[0] - 32768)
    d.value("co2_lpf_ppm", w[1] - 32768)
    d.value("co2_sensor_temperature_c", (w[2] - 32768) / 100)
    d.value("capacitor_1_v", w[3] / 1000)
    d.value("capacitor_2_v", w[4] / 1000)
    d.value("co2_sensor_status", w[5])
    d.value("raw_ir_reading", w[6])
    d.value("raw_ir_reading_lpf", w[7])
    if w[5]:
        d.warn(f"co2_sensor_status={w[5]}")


LP8P = ((2, _sht), (2, _baro), (8, _lp8), (1, _battery))


@codec("decentlab/dl-lp8p", vendor="Decentlab", models=("DL-LP8P",), device_class="co2")
def dl_lp8p(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, LP8P, settings).build()


def _ds18(w: Sequence[int], d: Draft, s: Mapping[str, Any]) -> None:
    d.value("temperature_c", (w[0] - 32768) / 16)


@codec("decentlab/dl-ds18", vendor="Decentlab", models=("DL-DS18",), device_class="legionella")
def dl_ds18(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, ((1, _ds18), (1, _battery)), settings).build()


def _mbx(w: Sequence[int], d: Draft, s: Mapping[str, Any]) -> None:
    d.value("distance_mm", w[0])
    d.value("valid_samples_count", w[1])
    if w[1] == 0:  # FORMATS.md 6.9: no valid echo, no reliable distance
        d.flag("invalid_reading", True)


@codec("decentlab/dl-mbx", vendor="Decentlab", models=("DL-MBX",), device_class=("bin", "gully"))
def dl_mbx(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    return walk(payload, ((2, _mbx), (1, _battery)), settings).build()


def _number(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CodecError(f"setting {key} must be a number", reason="codec_settings")
    return float(value)


def _pr26(w: Sequence[int], d: Draft, s: Mapping[str, Any]) -> None:
    p_min = _number(s, "pressure_min_bar", 0.0)
    p_max = _number(s, "pressure_max_bar", 1.0)
    d.value("pressure_bar", (w[0] - 16384) / 32768 * (p_max - p_min) + p_min)
    d.value("temperature_c", (w[1] - 384) * 0.003125 - 50)


@codec("decentlab/dl-pr26", vendor="Decentlab", models=("DL-PR26",), device_class="gully")
def dl_pr26(f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
    """Settings: `pressure_min_bar` (default 0), `pressure_max_bar` (default 1)."""
    return walk(payload, ((2, _pr26), (1, _battery)), settings).build()
