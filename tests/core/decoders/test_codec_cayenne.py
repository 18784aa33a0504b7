"""Cayenne LPP: every type, several channels, repeats, unknown type, overrun (FORMATS.md 7)."""

from __future__ import annotations

import pytest

import decoders
from gateway_agent.errors import CodecError


def dec(hexstr: str, settings: dict[str, object] | None = None) -> decoders.Decoded:
    return decoders.decode("cayenne-lpp", 1, bytes.fromhex(hexstr.replace(" ", "")), settings)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ("01 00 01", {"digital_in_1": 1}),
        ("02 01 FF", {"digital_out_2": 255}),
        ("03 02 FF 38", {"analog_in_3": -2.0}),
        ("04 03 01 2C", {"analog_out_4": 3.0}),
        ("05 65 FF FF", {"illuminance_5_lux": 65535}),
        ("06 66 00", {"presence_6": 0}),
        ("07 67 FF 9C", {"temperature_7_c": -10.0}),
        ("08 68 64", {"humidity_8_pct": 50.0}),
        (
            "09 71 03 E8 FC 18 00 00",
            {"accelerometer_9_x_g": 1.0, "accelerometer_9_y_g": -1.0, "accelerometer_9_z_g": 0.0},
        ),
        ("0A 73 27 A6", {"pressure_10_hpa": 1015.0}),
        (
            "0B 86 00 64 FF 9C 00 00",
            {"gyrometer_11_x_dps": 1.0, "gyrometer_11_y_dps": -1.0, "gyrometer_11_z_dps": 0.0},
        ),
        (
            "01 88 06 76 5F F2 96 0A 00 03 E8",
            {
                "gps_1_latitude_deg": 42.3519,
                "gps_1_longitude_deg": -87.9094,
                "gps_1_altitude_m": 10.0,
            },
        ),
        (
            "01 88 F9 89 A1 00 00 00 FF FF 9C",
            {"gps_1_latitude_deg": -42.3519, "gps_1_longitude_deg": 0.0, "gps_1_altitude_m": -1.0},
        ),
    ],
)
def test_each_type(record: str, expected: dict[str, float]) -> None:
    d = dec(record)
    assert dict(d.extras) == pytest.approx(expected, rel=1e-9)
    assert not d.measurements and not d.flags


def test_several_channels_and_repeated_types() -> None:
    d = dec("01 67 00 C8 02 67 FF 38 03 68 50 01 68 60")
    assert dict(d.extras) == pytest.approx(
        {
            "temperature_1_c": 20.0,
            "temperature_2_c": -20.0,
            "humidity_3_pct": 40.0,
            "humidity_1_pct": 48.0,
        }
    )


def test_unknown_type_stops() -> None:
    d = dec("01 67 00 C8 02 74 01 F4 03 68 50")
    assert dict(d.extras) == {"temperature_1_c": 20.0}
    assert d.flags == {"truncated": True}
    assert d.warnings


@pytest.mark.parametrize(
    "hexstr", ["01 67 00", "01", "01 67 00 C8 02", "01 88 00 00 00 00 00 00 00 00"]
)
def test_record_past_the_end(hexstr: str) -> None:
    with pytest.raises(CodecError) as err:
        dec(hexstr)
    assert err.value.reason == "codec_short"


def test_channel_alias_through_field_map() -> None:
    d = dec("01 67 00 C8 02 68 50", {"field_map": {"temperature_1_c": "temperature_c"}})
    assert dict(d.measurements) == {"temperature_c": 20.0}
    assert dict(d.extras) == {"humidity_2_pct": 40.0}
