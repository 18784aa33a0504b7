"""Every worked example of devices/FORMATS.md through `decoders.decode` (rel tol 1e-9)."""

from __future__ import annotations

from typing import Any

import pytest

import decoders

BIN = {"empty_distance_mm": 1200, "full_distance_mm": 150}
M, X, F = "measurements", "extras", "flags"

# (codec, fport, hex, settings, measurements, extras, flags)
VECTORS: list[tuple[str, int, str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]]
VECTORS = [
    (
        "milesight/am319",
        85,
        "03 67 D6 00 04 68 60 05 00 01 06 CB 03 07 7D 3A 07 09 73 94 27 0A 7D 03 00 0B 7D 0C 00"
        " 0C 7D 13 00",
        {},
        {
            "co2_ppm": 1850,
            "temperature_c": 21.4,
            "humidity_pct": 48.0,
            "pressure_hpa": 1013.2,
            "pm2_5_ugm3": 12,
        },
        {"pm10_ugm3": 19, "hcho_mgm3": 0.03, "light_level": 3},
        {"occupied": True},
    ),
    (
        "milesight/am307",
        85,
        "01 75 4E 03 67 E7 FF 04 68 AB 07 7D 9F 01",
        {},
        {"battery_pct": 78, "temperature_c": -2.5, "humidity_pct": 85.5, "co2_ppm": 415},
        {},
        {},
    ),
    ("milesight/am103", 85, "FF 01 01 FF 09 01 40 FF 0A 01 14 FF 0F 00", {}, {}, {}, {}),
    (
        "elsys/ers-co2",
        1,
        "01 00 CB 02 37 04 01 2C 05 00 06 03 E8 07 0E 10",
        {},
        {"temperature_c": 20.3, "humidity_pct": 55, "co2_ppm": 1000, "battery_v": 3.6},
        {"illuminance_lux": 300, "motion_count": 0},
        {},
    ),
    (
        "elsys/ers-co2-lite",
        1,
        "01 FF F6 02 5A 06 07 D0 07 0D 48",
        {},
        {"temperature_c": -1.0, "humidity_pct": 90, "co2_ppm": 2000, "battery_v": 3.4},
        {},
        {},
    ),
    (
        "elsys/ers-co2",
        1,
        "0C 02 67 07 0E 0A",
        {},
        {"battery_v": 3.594},
        {"external_temperature_c": 61.5},
        {},
    ),
    (
        "decentlab/dl-lp8p",
        1,
        "02 0A 1B 00 0F 60 00 70 00 1A 2C C5 C1 84 B0 84 7E 87 85 0C 1C 0B B8 00 00 94 70 94 84"
        " 0B F4",
        {},
        {
            "temperature_c": 19.044999999999995,
            "humidity_pct": 48.6875,
            "pressure_hpa": 1012.5,
            "co2_ppm": 1200,
            "battery_v": 3.06,
        },
        {
            "barometer_temperature_c": 17.0,
            "co2_lpf_ppm": 1150,
            "co2_sensor_temperature_c": 19.25,
            "capacitor_1_v": 3.1,
            "capacitor_2_v": 3.0,
            "co2_sensor_status": 0,
            "raw_ir_reading": 38000,
            "raw_ir_reading_lpf": 38020,
        },
        {},
    ),
    (
        "decentlab/dl-lp8p",
        1,
        "02 0A 1B 00 0C 88 66 88 34 88 A2 0B EA 0B 86 00 00 92 7C 92 90 0B 86",
        {},
        {"co2_ppm": 2150, "battery_v": 2.95},
        {
            "co2_lpf_ppm": 2100,
            "co2_sensor_temperature_c": 22.1,
            "capacitor_1_v": 3.05,
            "capacitor_2_v": 2.95,
            "co2_sensor_status": 0,
            "raw_ir_reading": 37500,
            "raw_ir_reading_lpf": 37520,
        },
        {},
    ),
    (
        "milesight/em500-co2",
        85,
        "01 75 46 03 67 BE 00 04 68 64 05 7D 20 03 06 73 A1 27",
        {},
        {
            "battery_pct": 70,
            "temperature_c": 19.0,
            "humidity_pct": 50.0,
            "co2_ppm": 800,
            "pressure_hpa": 1014.5,
        },
        {},
        {},
    ),
    (
        "dragino/laq4",
        2,
        "0C E4 04 00 2D 03 E8 00 D2 02 26",
        {},
        {
            "battery_v": 3.3,
            "tvoc_ppb": 45,
            "co2_ppm": 1000,
            "temperature_c": 21.0,
            "humidity_pct": 55.0,
        },
        {},
        {"alarm": False},
    ),
    (
        "milesight/ts302",
        85,
        "01 75 58 03 67 67 02 04 67 8E 00",
        {},
        {"battery_pct": 88, "temperature_c": 61.5},
        {"temperature_2_c": 14.2},
        {},
    ),
    (
        "milesight/ts301",
        3,
        "83 67 F4 01 01 04 67 D2 00",
        {},
        {"temperature_c": 50.0},
        {"temperature_2_c": 21.0},
        {"temperature_1_alarm": "threshold"},
    ),
    (
        "decentlab/dl-ds18",
        1,
        "02 04 00 00 03 83 C8 0B B8",
        {},
        {"temperature_c": 60.5, "battery_v": 3.0},
        {},
        {},
    ),
    (
        "decentlab/dl-ds18",
        1,
        "02 04 00 00 03 7F AC 0B 3B",
        {},
        {"temperature_c": -5.25, "battery_v": 2.875},
        {},
        {},
    ),
    (
        "milesight/em500-pt100",
        85,
        "01 75 50 03 67 62 02",
        {},
        {"battery_pct": 80, "temperature_c": 61.0},
        {},
        {},
    ),
    ("milesight/em500-pt100", 85, "03 67 7C FF", {}, {"temperature_c": -13.2}, {}, {}),
    (
        "milesight/em310-udl",
        85,
        "01 75 61 03 82 E8 03 04 00 00",
        BIN,
        {"battery_pct": 97, "distance_mm": 1000, "fill_pct": 19.0},
        {},
        {"tilt": False},
    ),
    (
        "milesight/em310-udl",
        85,
        "03 82 96 00 04 00 01",
        BIN,
        {"distance_mm": 150},
        {},
        {"tilt": True},
    ),
    (
        "milesight/em400-mud",
        85,
        "01 75 5A 03 67 C8 00 04 82 20 03 05 00 00",
        {},
        {"battery_pct": 90, "temperature_c": 20.0, "distance_mm": 800},
        {},
        {"tilt": False},
    ),
    (
        "milesight/em400-tld",
        85,
        "84 82 C8 00 01 83 67 F6 FF 00",
        {},
        {"distance_mm": 200, "temperature_c": -1.0},
        {},
        {"distance_alarm": True, "temperature_abnormal": False},
    ),
    (
        "decentlab/dl-mbx",
        1,
        "02 01 23 00 03 02 EE 00 0A 0C 4E",
        {},
        {"distance_mm": 750, "battery_v": 3.15},
        {"valid_samples_count": 10},
        {},
    ),
    (
        "decentlab/dl-mbx",
        1,
        "02 01 23 00 03 0F A0 00 05 0B 22",
        {},
        {"distance_mm": 4000, "battery_v": 2.85},
        {"valid_samples_count": 5},
        {},
    ),
    (
        "milesight/em500-udl",
        85,
        "01 75 3C 03 82 D0 07",
        {"mount_height_mm": 3000},
        {"battery_pct": 60, "distance_mm": 2000, "level_mm": 1000},
        {},
        {},
    ),
    ("milesight/em500-udl", 85, "20 CE 00 F1 53 65 AA 05", {}, {}, {}, {}),
    (
        "milesight/em500-swl",
        85,
        "01 75 62 03 77 96 00",
        {},
        {"battery_pct": 98, "level_mm": 1500},
        {},
        {},
    ),
    (
        "decentlab/dl-pr26",
        1,
        "02 02 00 00 03 60 00 4C 80 0C E4",
        {},
        {"temperature_c": 10.0, "battery_v": 3.3, "level_mm": 2549.29},
        {"pressure_bar": 0.25},
        {},
    ),
    (
        "decentlab/dl-pr26",
        1,
        "02 02 00 00 03 50 00 45 A0 0B EA",
        {},
        {"temperature_c": 4.5, "battery_v": 3.05, "level_mm": 1274.645},
        {"pressure_bar": 0.125},
        {},
    ),
    (
        "dragino/ldds20",
        2,
        "0C F0 04 D2 00 00 00 01",
        {},
        {"battery_v": 3.312, "level_mm": 1234},
        {},
        {"interrupt": False, "sensor_detected": True},
    ),
    (
        "dragino/ldds20",
        2,
        "CC E4 00 00 00 00 00 00",
        {},
        {"battery_v": 3.3},
        {},
        {"sensor_absent": True, "interrupt": False, "sensor_detected": False},
    ),
    (
        "dragino/ldds75",
        2,
        "0E 10 03 52 01 00 FA 01",
        {},
        {"battery_v": 3.6, "distance_mm": 850},
        {"ds18b20_temperature_c": 25.0},
        {"interrupt": True, "sensor_detected": True},
    ),
    (
        "cayenne-lpp",
        1,
        "01 00 01 02 02 01 2C 03 66 01",
        {},
        {},
        {"digital_in_1": 1, "analog_in_2": 3.0, "presence_3": 1},
        {},
    ),
    (
        "cayenne-lpp",
        1,
        "05 86 00 64 FF 9C 00 00 07 73 27 A6 08 68 91",
        {},
        {},
        {
            "gyrometer_5_x_dps": 1.0,
            "gyrometer_5_y_dps": -1.0,
            "gyrometer_5_z_dps": 0.0,
            "pressure_7_hpa": 1015.0,
            "humidity_8_pct": 72.5,
        },
        {},
    ),
]


def _id(v: tuple[Any, ...]) -> str:
    return f"{v[0]}:{v[2].replace(' ', '')[:16]}"


@pytest.mark.parametrize("vector", VECTORS, ids=[_id(v) for v in VECTORS])
def test_worked_example(vector: tuple[Any, ...]) -> None:
    codec_id, port, hexstr, settings, meas, extras, flags = vector
    d = decoders.decode(codec_id, port, bytes.fromhex(hexstr), settings)
    assert dict(d.measurements) == pytest.approx(meas, rel=1e-9)
    assert dict(d.extras) == pytest.approx(extras, rel=1e-9)
    assert dict(d.flags) == flags
    assert not d.warnings


def test_every_builtin_codec_has_a_worked_example() -> None:
    covered = {v[0] for v in VECTORS}
    primaries = {c.alias_of or c.id for c in decoders.CODECS.values() if c.source == "builtin"}
    assert primaries <= {decoders.CODECS[c].alias_of or c for c in covered}


def test_decentlab_device_id_is_metadata() -> None:
    d = decoders.decode("decentlab/dl-lp8p", 1, bytes.fromhex(VECTORS[6][2]))
    assert d.object["device_id"] == 2587
    assert "device_id" not in d.measurements
    assert "device_id" not in d.extras


def test_history_records() -> None:
    d = decoders.decode("milesight/em500-udl", 85, bytes.fromhex("20CE00F15365AA05"))
    assert [dict(h) for h in d.history] == [{"timestamp": 1700000000, "distance_mm": 1450}]
    assert not d.measurements
    d = decoders.decode("milesight/ts302", 85, bytes.fromhex("20CE80645A66425E027800"))
    assert [dict(h) for h in d.history] == [
        {
            "timestamp": 1717200000,
            "temperature_c": pytest.approx(60.6),
            "temperature_2_c": pytest.approx(12.0),
            "temperature_2_alarm": "threshold_release",
        }
    ]
