"""Milesight channel-record codecs: every record, flag, quirk and error branch (FORMATS.md 5.1)."""

from __future__ import annotations

import pytest

import decoders
from gateway_agent.errors import CodecError


def dec(codec_id: str, hexstr: str, settings: dict[str, object] | None = None) -> decoders.Decoded:
    return decoders.decode(codec_id, 85, bytes.fromhex(hexstr), settings)


@pytest.mark.parametrize(
    ("record", "kind", "name", "value"),
    [
        ("0175 64", "m", "battery_pct", 100),
        ("0367 1801", "m", "temperature_c", 28.0),
        ("0468 01", "m", "humidity_pct", 0.5),
        ("06CB 05", "x", "light_level", 5),
        ("077D 3A07", "m", "co2_ppm", 1850),
        ("087D 2500", "x", "tvoc_raw", 37),
        ("08E6 FA00", "x", "tvoc_ugm3", 250),
        ("0973 9427", "m", "pressure_hpa", 1013.2),
        ("0A7D 0300", "x", "hcho_mgm3", 0.03),
        ("0B7D 0C00", "m", "pm2_5_ugm3", 12),
        ("0C7D 1300", "x", "pm10_ugm3", 19),
        ("0D7D 0500", "x", "o3_ppm", 0.05),
        ("0500 00", "f", "occupied", False),
        ("0500 01", "f", "occupied", True),
        ("0E01 01", "f", "buzzer_on", True),
        ("0E01 00", "f", "buzzer_on", False),
    ],
)
def test_am319_records(record: str, kind: str, name: str, value: object) -> None:
    d = dec("milesight/am319", record.replace(" ", ""))
    where = {"m": d.measurements, "x": d.extras, "f": d.flags}[kind]
    assert where[name] == pytest.approx(value)
    assert "tvoc_ppb" not in d.measurements


def test_am307_legacy_record_stops_and_keeps_what_came_before() -> None:
    d = dec("milesight/am307", "0175 4E 0367 E7FF 0468 AB 056A 4900".replace(" ", ""))
    assert dict(d.measurements) == pytest.approx(
        {"battery_pct": 78, "temperature_c": -2.5, "humidity_pct": 85.5}
    )
    assert d.flags["truncated"] is True
    assert len(d.warnings) == 1
    assert "05 6a" in d.warnings[0]


AM319_HISTORY = "20CE 00F15365 D600 6000 01 03 3A07 2500 9427 0C00 1300 0300".replace(" ", "")


def test_am319_history_needs_the_firmware_generation() -> None:
    d = dec("milesight/am319", AM319_HISTORY)
    assert not d.history
    assert d.flags["truncated"] is True
    d = dec("milesight/am319", AM319_HISTORY, {"firmware_generation": "2025"})
    assert "truncated" not in d.flags
    (h,) = d.history
    assert dict(h) == pytest.approx(
        {
            "timestamp": 1700000000,
            "temperature_c": 21.4,
            "humidity_pct": 48.0,
            "occupied": True,
            "light_level": 3,
            "co2_ppm": 1850,
            "tvoc_raw": 37,
            "pressure_hpa": 1013.2,
            "pm2_5_ugm3": 12,
            "pm10_ugm3": 19,
            "hcho_mgm3": 0.03,
        }
    )
    assert d.object["history"][0]["co2_ppm"] == 1850


def test_device_info_records_carry_no_measurements() -> None:
    d = dec(
        "milesight/em310-udl",
        "FF0101 FF090140 FF0A0114 FF0B01 FF0F00 FF16 0102030405060708 FFFE01 FFFF0100"
        " FF06 000000000000000000".replace(" ", ""),
    )
    assert not d.measurements and not d.extras and not d.flags
    assert d.object["serial_number"] == "0102030405060708"


def test_unknown_ff_pair_stops() -> None:
    d = dec("milesight/em500-pt100", "0175 50 FF06 00 0367 6202".replace(" ", ""))
    assert dict(d.measurements) == {"battery_pct": 80}
    assert d.flags == {"truncated": True}


@pytest.mark.parametrize(
    "hexstr",
    ["0367 62", "0175", "03", "0175 50 0367", "20CE 00F15365 AA"],
)
def test_truncated_record_is_an_error(hexstr: str) -> None:
    with pytest.raises(CodecError) as err:
        dec(
            "milesight/em500-udl" if "20CE" in hexstr else "milesight/am319",
            hexstr.replace(" ", ""),
        )
    assert err.value.reason == "codec_short"
    assert err.value.codec is not None


def test_empty_payload_decodes_to_nothing() -> None:
    d = dec("milesight/am319", "")
    assert not d.measurements and not d.flags


def test_port_is_ignored() -> None:
    a = decoders.decode("milesight/ts302", 3, bytes.fromhex("0367 6702".replace(" ", "")))
    b = decoders.decode("milesight/ts302", 85, bytes.fromhex("0367 6702".replace(" ", "")))
    assert a == b


def test_same_type_byte_differs_by_channel() -> None:
    assert dict(dec("milesight/em500-co2", "057D2003").measurements) == {"co2_ppm": 800}
    assert dec("milesight/am319", "057D2003").flags["truncated"] is True
    assert dec("milesight/em310-udl", "0500 01".replace(" ", "")).flags == {"truncated": True}
    assert dec("milesight/em400-mud", "0500 01".replace(" ", "")).flags == {"tilt": True}


def test_milesight_frame_is_not_lpp() -> None:
    assert dec("milesight/em500-pt100", "03673401").measurements["temperature_c"] == 30.8
    lpp = decoders.decode("cayenne-lpp", 1, bytes.fromhex("03673401"))
    assert lpp.extras["temperature_3_c"] == pytest.approx(1331.3)


@pytest.mark.parametrize(
    ("record", "expected_m", "expected_x", "expected_f"),
    [
        ("0367 6702", {"temperature_c": 61.5}, {}, {}),
        ("0467 8E00", {}, {"temperature_2_c": 14.2}, {}),
        ("0300 00", {}, {}, {"magnet_1_open": False}),
        ("0300 01", {}, {}, {"magnet_1_open": True}),
        ("0400 01", {}, {}, {"magnet_2_open": True}),
        ("8367 F401 00", {"temperature_c": 50.0}, {}, {"temperature_1_alarm": "threshold_release"}),
        ("8467 F401 02", {}, {"temperature_2_c": 50.0}, {"temperature_2_alarm": "mutation"}),
        (
            "93D7 5802 F401 02",
            {"temperature_c": 60.0},
            {"temperature_change_c": 5.0},
            {"temperature_1_alarm": "mutation"},
        ),
        (
            "94D7 9CFF 0CFE 01",
            {},
            {"temperature_2_c": -10.0, "temperature_2_change_c": -5.0},
            {"temperature_2_alarm": "threshold"},
        ),
    ],
)
def test_ts30x_records(
    record: str,
    expected_m: dict[str, float],
    expected_x: dict[str, float],
    expected_f: dict[str, object],
) -> None:
    d = dec("milesight/ts302", record.replace(" ", ""))
    assert dict(d.measurements) == pytest.approx(expected_m)
    assert dict(d.extras) == pytest.approx(expected_x)
    assert dict(d.flags) == expected_f


def test_ts30x_unknown_alarm_byte_warns() -> None:
    d = dec("milesight/ts302", "8367F40109")
    assert d.flags["temperature_1_alarm"] == "unknown_9"
    assert d.warnings


@pytest.mark.parametrize(
    ("mask", "w1", "w2", "expected"),
    [
        (
            0x11,
            "F401",
            "6400",
            {
                "temperature_c": 50.0,
                "temperature_1_alarm": "threshold",
                "temperature_2_c": 10.0,
                "temperature_2_alarm": "threshold",
            },
        ),
        (
            0x34,
            "F401",
            "6400",
            {"temperature_c": 50.0, "temperature_1_alarm": "mutation", "temperature_2_c": 10.0},
        ),
        (0x56, "0100", "0000", {"magnet_1_open": True, "alarm": True, "magnet_2_open": False}),
        (0x06, "0100", "0100", {"magnet_2_open": True}),
    ],
)
def test_ts30x_history_masks(mask: int, w1: str, w2: str, expected: dict[str, object]) -> None:
    d = dec("milesight/ts302", f"20CE80645A66{mask:02x}{w1}{w2}")
    (h,) = d.history
    assert dict(h) == pytest.approx({"timestamp": 1717200000, **expected})


def test_em400_records() -> None:
    d = dec("milesight/em400-udl", "8367 C800 01 8482 2003 00 0500 01".replace(" ", ""))
    assert dict(d.measurements) == {"temperature_c": 20.0, "distance_mm": 800}
    assert dict(d.flags) == {"temperature_abnormal": True, "distance_alarm": False, "tilt": True}


def test_em310_distance_is_unsigned() -> None:
    assert dec("milesight/em310-udl", "0382FFFF").measurements["distance_mm"] == 65535


def test_em500_udl_distance_is_unsigned_millimetres() -> None:
    assert dec("milesight/em500-udl", "03821E00").measurements["distance_mm"] == 30
    assert dec("milesight/em500-udl", "0382FFFF").measurements["distance_mm"] == 65535


def test_em500_swl_history_in_centimetres() -> None:
    d = dec("milesight/em500-swl", "20CE00F153659600", {"mount_height_mm": 5000})
    assert [dict(h) for h in d.history] == [{"timestamp": 1700000000, "level_mm": 1500}]


def test_em500_udl_history_gets_derived_level() -> None:
    d = dec("milesight/em500-udl", "20CE00F15365AA05", {"mount_height_mm": 3000})
    assert d.history[0]["level_mm"] == 1550
