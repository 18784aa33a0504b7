"""Dragino fixed layouts: LDDS20/LDDS75 and LAQ4, ports, lengths, sentinels (FORMATS.md 6.12)."""

from __future__ import annotations

import pytest

import decoders
from gateway_agent.errors import CodecError


def dec(codec_id: str, hexstr: str, port: int = 2, **settings: object) -> decoders.Decoded:
    return decoders.decode(codec_id, port, bytes.fromhex(hexstr.replace(" ", "")), settings)


@pytest.mark.parametrize("codec_id", ["dragino/ldds20", "dragino/ldds75", "dragino/laq4"])
@pytest.mark.parametrize("port", [1, 3, 5, 85])
def test_wrong_port(codec_id: str, port: int) -> None:
    payload = (
        "0C F0 04 D2 00 00 00 01" if "ldds" in codec_id else "0C E4 04 00 2D 03 E8 00 D2 02 26"
    )
    with pytest.raises(CodecError) as err:
        dec(codec_id, payload, port)
    assert err.value.reason == "codec_fport"


@pytest.mark.parametrize(
    "hexstr", ["", "0C F0 04 D2 00 00 00", "0C F0 04 D2 00 00 00 01 00", "0CF0"]
)
def test_ldds_wrong_length(hexstr: str) -> None:
    with pytest.raises(CodecError) as err:
        dec("dragino/ldds20", hexstr)
    assert err.value.reason == "codec_length"


def test_ldds_invalid_reading_20() -> None:
    d = dec("dragino/ldds75", "0C F0 00 14 00 00 00 01", mount_height_mm=3000)
    assert dict(d.measurements) == {"battery_v": 3.312}
    assert d.flags["invalid_reading"] is True


def test_ldds_battery_mask() -> None:
    assert dec("dragino/ldds20", "FF FF 04 D2 00 00 00 01").measurements["battery_v"] == 16.383


def test_ds18b20_zero_needs_probe_setting() -> None:
    assert "ds18b20_temperature_c" not in dec("dragino/ldds20", "0C F0 04 D2 00 00 00 01").extras
    d = dec("dragino/ldds20", "0C F0 04 D2 00 00 00 01", ds18b20_fitted=True)
    assert d.extras["ds18b20_temperature_c"] == 0.0
    assert dec("dragino/ldds20", "0C F0 04 D2 00 FF 9C 01").extras["ds18b20_temperature_c"] == -10.0


def test_ldds75_bin_fill_and_ldds20_level_not_overridden() -> None:
    bin_settings = {"empty_distance_mm": 1200, "full_distance_mm": 150}
    d = dec("dragino/ldds75", "0E 10 03 52 01 00 FA 01", **bin_settings)
    assert d.measurements["fill_pct"] == pytest.approx(33.3)
    d = dec("dragino/ldds20", "0C F0 04 D2 00 00 00 01", mount_height_mm=3000)
    assert d.measurements["level_mm"] == 1234


def test_laq4_alarm_and_threshold_mode() -> None:
    d = dec("dragino/laq4", "0C E4 05 00 2D 03 E8 00 D2 02 26")
    assert d.flags == {"alarm": True}
    d = dec("dragino/laq4", "0C E4 7C 05 1E 14 50 01 90 07 D0")
    assert dict(d.measurements) == {"battery_v": 3.3}
    assert d.object["temperature_min_c"] == 5 and d.object["co2_max_ppm"] == 2000
    assert d.object["work_mode"] == 31


def test_laq4_negative_temperature() -> None:
    d = dec("dragino/laq4", "0C E4 04 00 2D 03 E8 FF 9C 02 26")
    assert d.measurements["temperature_c"] == -10.0


@pytest.mark.parametrize("status", ["00", "08", "80", "79"])
def test_laq4_unknown_mode(status: str) -> None:
    with pytest.raises(CodecError) as err:
        dec("dragino/laq4", f"0C E4 {status} 00 2D 03 E8 00 D2 02 26")
    assert err.value.reason == "codec_mode"


@pytest.mark.parametrize(
    "hexstr", ["0C E4 04 00 2D 03 E8 00 D2 02", "0C E4 04 00 2D 03 E8 00 D2 02 26 00"]
)
def test_laq4_wrong_length(hexstr: str) -> None:
    with pytest.raises(CodecError) as err:
        dec("dragino/laq4", hexstr)
    assert err.value.reason == "codec_length"
