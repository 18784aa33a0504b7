"""decoders public API: registry, wrapper, JSON shape, field_map, derived measurements, fuzz."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import decoders
from decoders.derive import check_settings, derive_values
from decoders.registry import Codec, codec, register
from decoders.types import NORMALIZED_MEASUREMENTS, Decoded
from gateway_agent.errors import CodecError, ConfigError

TABLE_IDS = {
    "milesight/am319", "milesight/am307", "milesight/am103", "elsys/ers-co2",
    "elsys/ers-co2-lite", "decentlab/dl-lp8p", "milesight/em500-co2", "dragino/laq4",
    "milesight/ts302", "milesight/ts301", "decentlab/dl-ds18", "milesight/em500-pt100",
    "milesight/em310-udl", "milesight/em400-mud", "milesight/em400-tld", "milesight/em400-udl",
    "decentlab/dl-mbx", "milesight/em500-udl", "milesight/em500-swl", "decentlab/dl-pr26",
    "dragino/ldds20", "dragino/ldds75", "cayenne-lpp",
}  # fmt: skip


def test_registry_holds_exactly_the_formats_table() -> None:
    assert {k for k, c in decoders.CODECS.items() if c.source == "builtin"} == TABLE_IDS
    assert decoders.CODECS["milesight/am307"].alias_of == "milesight/am319"
    assert decoders.CODECS["milesight/am307"].fn is decoders.CODECS["milesight/am319"].fn


def test_duplicate_id_raises() -> None:
    with pytest.raises(ValueError, match="duplicate"):

        @codec("cayenne-lpp", vendor="x")
        def again(f_port: int, payload: bytes, s: Any) -> Decoded:
            return Decoded()


def test_list_codecs_rows() -> None:
    rows = {r["id"]: r for r in decoders.list_codecs()}
    assert set(rows) >= TABLE_IDS
    ldds = rows["dragino/ldds20"]
    assert ldds["vendor"] == "Dragino" and ldds["f_ports"] == [2] and ldds["source"] == "builtin"
    assert rows["decentlab/dl-mbx"]["class"] == ["bin", "gully"]
    assert rows["milesight/am319"]["f_ports"] is None
    json.dumps(rows)
    assert decoders.plugin_errors() == []


def test_unknown_codec() -> None:
    with pytest.raises(CodecError) as err:
        decoders.decode("acme/nothing", 1, b"\x00")
    assert err.value.reason == "unknown_codec"
    assert err.value.codec == "acme/nothing"


@pytest.mark.parametrize("port", [-1, 256, True])
def test_bad_port(port: int) -> None:
    with pytest.raises(CodecError) as err:
        decoders.decode("cayenne-lpp", port, b"")
    assert err.value.reason == "codec_fport"


def _broken(kind: str) -> Codec:
    def fn(f_port: int, payload: bytes, s: Any) -> Any:
        if kind == "raise":
            raise ZeroDivisionError("oops")
        if kind == "name":
            return Decoded(measurements={"co2": 1.0})
        return {"co2_ppm": 1}

    return Codec(f"test/broken-{kind}", fn, vendor="test")


@pytest.mark.parametrize(("kind", "reason"), [("raise", "codec_internal"), ("name", "codec_internal"),
                                              ("type", "codec_result")])  # fmt: skip
def test_wrapper_turns_codec_bugs_into_codec_error(kind: str, reason: str) -> None:
    entry = _broken(kind)
    register(entry)
    try:
        with pytest.raises(CodecError) as err:
            decoders.decode(entry.id, 1, b"\x01")
        assert err.value.reason == reason
        assert err.value.codec == entry.id
    finally:
        del decoders.CODECS[entry.id]


def test_decoded_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="normalized"):
        Decoded(measurements={"temperature": 1.0})
    with pytest.raises(ValueError, match="finite"):
        Decoded(measurements={"temperature_c": float("nan")})
    with pytest.raises(ValueError, match="finite"):
        Decoded(measurements={"temperature_c": True})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="flag"):
        Decoded(flags={"tilt": 1})  # type: ignore[dict-item]


def test_decoded_is_immutable_and_json_able() -> None:
    d = decoders.decode("milesight/ts302", 85, bytes.fromhex("20CE80645A66425E027800"))
    with pytest.raises(TypeError):
        d.measurements["co2_ppm"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        d.history[0]["timestamp"] = 0  # type: ignore[index]
    text = json.dumps(d.to_json())
    assert json.loads(text)["history"][0]["timestamp"] == 1717200000


def test_decode_result_json_shape() -> None:
    d = decoders.decode(
        "milesight/em310-udl", 85, bytes.fromhex("0175610382E8030400 00".replace(" ", ""))
    )
    out = decoders.decode_result_json("milesight/em310-udl", d)
    assert list(out)[:3] == ["codec", "measurements", "extras"]
    assert out == {
        "codec": "milesight/em310-udl",
        "measurements": {"battery_pct": 97, "distance_mm": 1000},
        "extras": {},
        "flags": {"tilt": False},
        "warnings": [],
        # #21: the codec's own output beside them (additions only; the contract's keys stay)
        "object": {"battery_pct": 97, "distance_mm": 1000, "tilt": False},
    }
    json.dumps(out)


# --- derived measurements (FORMATS.md section 3) -------------------------------------------

BIN = {"empty_distance_mm": 1200, "full_distance_mm": 150}


@pytest.mark.parametrize(
    ("values", "config", "expected"),
    [
        ({"distance_mm": 1000}, BIN, {"fill_pct": 19.0}),
        ({"distance_mm": 150}, BIN, {"fill_pct": 100.0}),
        ({"distance_mm": 100}, BIN, {"fill_pct": 100.0}),
        ({"distance_mm": 1500}, BIN, {"fill_pct": 0.0}),
        ({"distance_mm": 700}, BIN, {"fill_pct": 47.6}),
        ({"distance_mm": 2000}, {"mount_height_mm": 3000}, {"level_mm": 1000}),
        ({"distance_mm": 3500}, {"mount_height_mm": 3000}, {"level_mm": 0}),
        ({"pressure_bar": 0.25}, {}, {"level_mm": 2549.29}),
        ({"pressure_bar": 0.125}, {}, {"level_mm": 1274.645}),
        ({"pressure_bar": 0.25}, {"pressure_offset_bar": 0.05}, {"level_mm": 0.2 * 10197.16}),
        (
            {"pressure_bar": 0.25},
            {"water_density_kg_m3": 1025},
            {"level_mm": 2549.29 * 1000 / 1025},
        ),
        ({"pressure_bar": -0.01}, {}, {"level_mm": 0.0}),
        ({"distance_mm": 1000}, {}, {}),
        ({}, BIN | {"mount_height_mm": 3000}, {}),
    ],
)
def test_derived(
    values: dict[str, Any], config: dict[str, Any], expected: dict[str, float]
) -> None:
    assert derive_values(values, config) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "blocker",
    [
        {"tilt": True},
        {"invalid_reading": True},
        {"sensor_absent": True},
        {"valid_samples_count": 0},
    ],
)
def test_blocking_flags_stop_derivation(blocker: dict[str, Any]) -> None:
    cfg = BIN | {"mount_height_mm": 3000}
    assert derive_values({"distance_mm": 1000, **blocker}, cfg) == {}
    assert derive_values({"pressure_bar": 0.2, **blocker}, cfg) == {}
    unblocked = {k: (False if v is True else 3) for k, v in blocker.items()}
    assert set(derive_values({"distance_mm": 1000, **unblocked}, cfg)) == {"fill_pct", "level_mm"}


def test_tilt_blocks_fill_end_to_end() -> None:
    up = decoders.decode("milesight/em310-udl", 85, bytes.fromhex("0382E803040000"), BIN)
    tilted = decoders.decode("milesight/em310-udl", 85, bytes.fromhex("0382E803040001"), BIN)
    assert up.measurements["fill_pct"] == 19.0
    assert "fill_pct" not in tilted.measurements


def test_sensor_absent_blocks_level_end_to_end() -> None:
    d = decoders.decode(
        "dragino/ldds75", 2, bytes.fromhex("CCE4000000000000"), {"mount_height_mm": 3000}
    )
    assert "level_mm" not in d.measurements


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"empty_distance_mm": "1200", "full_distance_mm": 150}, "settings.empty_distance_mm"),
        ({"empty_distance_mm": 1200}, "settings"),
        ({"empty_distance_mm": 100, "full_distance_mm": 150}, "settings.empty_distance_mm"),
        ({"water_density_kg_m3": 0}, "settings.water_density_kg_m3"),
        ({"field_map": {"co2": "co2"}}, "settings.field_map.co2"),
        ({"field_map": {"co2": {"name": "co2_ppm", "scale": "x"}}}, "settings.field_map.co2"),
        ({"field_map": {"co2": {"name": "co2_ppm", "unit": "ppm"}}}, "settings.field_map.co2"),
        ({"field_map": {"a..b": "co2_ppm"}}, "settings.field_map.a..b"),
        ({"field_map": ["co2"]}, "settings.field_map"),
        ({"ds18b20_fitted": "yes"}, "settings.ds18b20_fitted"),
    ],
)
def test_check_settings(bad: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_settings(bad)
    assert err.value.key_path == key
    with pytest.raises(CodecError) as cerr:
        decoders.decode("cayenne-lpp", 1, b"", bad)
    assert cerr.value.reason == "codec_settings"


def test_field_map_scale_offset_and_dotted_paths() -> None:
    from decoders.js import split

    d = split({"data": {"co2": 800, "temp": 215, "t": [1, 2]}, "other": 5}, [])
    assert dict(d.extras) == {
        "data_co2": 800,
        "data_temp": 215,
        "data_t_0": 1,
        "data_t_1": 2,
        "other": 5,
    }
    from decoders.derive import apply_field_map

    fm = {"data.co2": "co2_ppm", "data.temp": {"name": "temperature_c", "scale": 0.1},
          "data.t.1": {"name": "battery_v", "offset": 1}, "missing.path": "humidity_pct"}  # fmt: skip
    out = apply_field_map(d, {"field_map": fm})
    assert dict(out.measurements) == pytest.approx(
        {"co2_ppm": 800, "temperature_c": 21.5, "battery_v": 3}
    )
    assert dict(out.extras) == {"data_t_0": 1, "other": 5}


def test_field_map_non_numeric_warns() -> None:
    d = decoders.decode(
        "milesight/em310-udl", 85, bytes.fromhex("040001"), {"field_map": {"tilt": "level_mm"}}
    )
    assert "level_mm" not in d.measurements
    assert any("not a number" in w for w in d.warnings)


# --- fuzz: every codec, random bytes and ports ----------------------------------------------


@pytest.mark.parametrize("codec_id", sorted(decoders.CODECS))
@settings(max_examples=120, deadline=None)
@given(payload=st.binary(max_size=40), f_port=st.integers(0, 255))
def test_fuzz_decoded_or_codec_error(codec_id: str, payload: bytes, f_port: int) -> None:
    try:
        d = decoders.decode(codec_id, f_port, payload, BIN | {"mount_height_mm": 3000})
    except CodecError as exc:
        err = exc
    else:
        err = None
    if err is not None:
        assert (err.codec, err.reason[:5]) == (codec_id, "codec")
        return
    assert isinstance(d, Decoded)
    assert set(d.measurements) <= NORMALIZED_MEASUREMENTS
    json.dumps(d.to_json())


@pytest.mark.parametrize("prefix", ["0175", "0367", "01", "02040000", "0C"])
@settings(max_examples=60, deadline=None)
@given(tail=st.binary(max_size=30))
def test_fuzz_structured_prefixes(prefix: str, tail: bytes) -> None:
    for codec_id in ("milesight/ts302", "elsys/ers-co2", "decentlab/dl-ds18", "cayenne-lpp"):
        try:
            d = decoders.decode(codec_id, 85, bytes.fromhex(prefix) + tail)
        except CodecError:
            continue
        assert set(d.measurements) <= NORMALIZED_MEASUREMENTS
