"""Decentlab protocol v2: groups, flags, version and length checks (FORMATS.md 5.3)."""

from __future__ import annotations

import pytest

import decoders
from gateway_agent.errors import CodecError


def dec(codec_id: str, hexstr: str, settings: dict[str, object] | None = None) -> decoders.Decoded:
    return decoders.decode(codec_id, 1, bytes.fromhex(hexstr.replace(" ", "")), settings)


def test_battery_only_frames() -> None:
    assert dict(dec("decentlab/dl-ds18", "02 04 00 00 02 0B B8").measurements) == {"battery_v": 3.0}
    assert dict(dec("decentlab/dl-lp8p", "02 0A 1B 00 08 0B B8").measurements) == {"battery_v": 3.0}
    d = dec("decentlab/dl-mbx", "02 01 23 00 02 0C 4E")
    assert dict(d.measurements) == {"battery_v": 3.15}
    assert not d.extras


def test_sensor_only_frame() -> None:
    d = dec("decentlab/dl-ds18", "02 04 00 00 01 80 00")
    assert dict(d.measurements) == {"temperature_c": 0.0}


def test_no_groups() -> None:
    d = dec("decentlab/dl-pr26", "02 02 00 00 00")
    assert not d.measurements
    assert d.object["device_id"] == 512


@pytest.mark.parametrize("version", ["00", "01", "03", "FF"])
def test_wrong_version(version: str) -> None:
    with pytest.raises(CodecError) as err:
        dec("decentlab/dl-ds18", f"{version} 04 00 00 03 83 C8 0B B8")
    assert err.value.reason == "codec_version"


@pytest.mark.parametrize(
    "hexstr",
    ["02 04 00 00 03 83 C8 0B", "02 04 00 00 03 83 C8 0B B8 00 00", "02 04 00 00 03"],
)
def test_wrong_length(hexstr: str) -> None:
    with pytest.raises(CodecError) as err:
        dec("decentlab/dl-ds18", hexstr)
    assert err.value.reason == "codec_length"


@pytest.mark.parametrize("hexstr", ["", "02", "02 04", "02 04 00 00"])
def test_header_too_short(hexstr: str) -> None:
    with pytest.raises(CodecError) as err:
        dec("decentlab/dl-ds18", hexstr)
    assert err.value.reason == "codec_short"


def test_unknown_flag_bits_warn_and_are_ignored() -> None:
    d = dec("decentlab/dl-ds18", "02 04 00 00 07 83 C8 0B B8")
    assert dict(d.measurements) == {"temperature_c": 60.5, "battery_v": 3.0}
    assert d.warnings


def test_lp8p_nonzero_sensor_status_is_surfaced() -> None:
    d = dec("decentlab/dl-lp8p", "02 0A 1B 00 04 88 66 88 34 88 A2 0B EA 0B 86 00 20 92 7C 92 90")
    assert d.extras["co2_sensor_status"] == 32
    assert any("co2_sensor_status=32" in w for w in d.warnings)


def test_mbx_zero_valid_samples_flags_invalid_and_blocks_derivation() -> None:
    settings = {"mount_height_mm": 3000, "empty_distance_mm": 1200, "full_distance_mm": 150}
    d = dec("decentlab/dl-mbx", "02 01 23 00 03 02 EE 00 00 0C 4E", settings)
    assert d.extras["valid_samples_count"] == 0
    assert d.flags == {"invalid_reading": True}
    assert "fill_pct" not in d.measurements and "level_mm" not in d.measurements
    d = dec("decentlab/dl-mbx", "02 01 23 00 03 02 EE 00 0A 0C 4E", settings)
    assert d.measurements["level_mm"] == 2250
    assert d.measurements["fill_pct"] == 42.9


def test_pr26_range_settings() -> None:
    d = dec(
        "decentlab/dl-pr26",
        "02 02 00 00 03 60 00 4C 80 0C E4",
        {"pressure_min_bar": 0, "pressure_max_bar": 4},
    )
    assert d.extras["pressure_bar"] == 1.0
    assert d.measurements["level_mm"] == pytest.approx(10197.16, rel=1e-9)
    assert "pressure_hpa" not in d.measurements


def test_pr26_negative_in_air_clamps_level() -> None:
    # 0x3E80 = 16000 -> -0.01171875 bar, the repository's in-air example.
    d = dec("decentlab/dl-pr26", "02 02 00 00 01 3E 80 4C 80")
    assert d.extras["pressure_bar"] == pytest.approx(-0.01171875, rel=1e-9)
    assert d.measurements["level_mm"] == 0.0


def test_pr26_bad_setting_type() -> None:
    with pytest.raises(CodecError) as err:
        dec("decentlab/dl-pr26", "02 02 00 00 02 0C E4", {"pressure_max_bar": "4"})
    assert err.value.reason == "codec_settings"
