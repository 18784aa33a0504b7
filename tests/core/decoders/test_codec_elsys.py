"""Elsys type records: every type in FORMATS.md 5.2, repeats, unknown type, truncation."""

from __future__ import annotations

import pytest

import decoders
from gateway_agent.errors import CodecError


def dec(hexstr: str) -> decoders.Decoded:
    return decoders.decode("elsys/ers-co2", 1, bytes.fromhex(hexstr.replace(" ", "")))


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("01 FF F6", {"temperature_c": -1.0}),
        ("02 37", {"humidity_pct": 55}),
        ("03 3F C1 00", {"accel_x": 63, "accel_y": -63, "accel_z": 0}),
        ("04 01 2C", {"illuminance_lux": 300}),
        ("05 07", {"motion_count": 7}),
        ("06 03 E8", {"co2_ppm": 1000}),
        ("07 0E 10", {"battery_v": 3.6}),
        ("08 04 B0", {"analog_1_v": 1.2}),
        ("0A 01 00", {"pulse_count": 256}),
        ("0B 00 01 00 00", {"pulse_total_count": 65536}),
        ("0C 02 67", {"external_temperature_c": 61.5}),
        ("0D 01", {"digital_input": True}),
        ("0E 07 D0", {"distance_mm": 2000}),
        ("0F 03", {"accel_motion_count": 3}),
        ("10 00 C8 FF 9C", {"ir_internal_temperature_c": 20.0, "ir_external_temperature_c": -10.0}),
        ("11 02", {"occupied": True}),
        ("11 00", {"occupied": False}),
        ("12 01", {"water_leak": True}),
        ("14 00 0F 75 A0", {"pressure_hpa": 1013.152}),
        ("15 50 3C", {"sound_peak_db": 80, "sound_average_db": 60}),
        ("19 02 58 19 00 64", {"external_temperature_2_c": 60.0, "external_temperature_3_c": 10.0}),
        ("1C 00 C8", {"tvoc_ppb": 200}),
    ],
)
def test_each_type(record: str, expected: dict[str, object]) -> None:
    d = dec(record)
    merged = {**d.measurements, **d.extras, **d.flags}
    assert merged == pytest.approx(expected)
    assert not d.warnings


def test_unknown_type_stops() -> None:
    d = dec("01 00 CB 3E 01 02 37")
    assert dict(d.measurements) == {"temperature_c": 20.3}
    assert d.flags == {"truncated": True}
    assert "3e" in d.warnings[0]


@pytest.mark.parametrize("hexstr", ["01 00", "06 03", "0B 00 01 00", "14"])
def test_truncated(hexstr: str) -> None:
    with pytest.raises(CodecError) as err:
        dec(hexstr)
    assert err.value.reason == "codec_short"
    assert err.value.codec == "elsys/ers-co2"


def test_humidity_is_whole_percent_and_port_ignored() -> None:
    a = decoders.decode("elsys/ers-co2", 5, bytes.fromhex("0237"))
    assert a.measurements["humidity_pct"] == 55
    assert a == dec("0237")
