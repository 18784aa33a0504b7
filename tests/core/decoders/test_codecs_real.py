"""Issue #21 must-show 1: real codec files from the TTN Device Repository and ChirpStack, run
unmodified, decode their repositories' example frames to the expected values, and CO2 /
temperature / distance arrive as the normalized measurements the presets use, with no field_map.
The files live in tests/fixtures/codecs/ (README.md there names repository, path and commit)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import decoders
from decoders.ttnrepo import resolve
from decoders.verify import differences

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "codecs"
TTN = FIXTURES / "ttn"
CS = FIXTURES / "chirpstack-device-profiles" / "vendors" / "decentlab" / "codecs"
SKELETON = FIXTURES / "chirpstack" / "examples" / "codec_plugins" / "plugin_skeleton.js"

pytestmark = pytest.mark.skipif(
    not (TTN / "vendor" / "elsys" / "elsys.js").exists() or not CS.is_dir(),
    reason="third-party codec fixtures absent: see tests/fixtures/codecs/README.md",
)


@pytest.fixture
def ttn_repo() -> Iterator[None]:
    decoders.configure_codecs(decoders.load_codec_settings({"ttn_repository": str(TTN)}))
    yield
    decoders.configure_codecs(decoders.CodecSettings())


def _cases(name: str) -> list[tuple[str, dict[str, Any]]]:
    path = CS / name
    if not path.exists():
        return []
    return [(path.name, case) for case in json.loads(path.read_text())]


# --- TTN Device Repository: Elsys ERS CO2 through ttn:elsys/ers-co2 ---------------------------


def test_ttn_model_resolves_to_its_codec_and_examples() -> None:
    model = resolve(TTN, "elsys/ers-co2")
    assert model.codec_name == "ers-co2-codec"
    assert model.uplink_file == TTN / "vendor" / "elsys" / "elsys.js"
    (ex,) = model.examples
    assert ex.kind == "uplink" and ex.f_port == 1
    assert ex.payload == bytes.fromhex("0100e202290400270506060308")
    assert ex.data == {"temperature": 22.6, "humidity": 41, "light": 39, "motion": 6, "co2": 776}
    assert resolve(TTN, "elsys/ers-co2/1.0/EU863-870").codec_name == "ers-co2-codec"


def test_ttn_codec_decodes_its_example_to_normalized_measurements(ttn_repo: None) -> None:
    (ex,) = resolve(TTN, "elsys/ers-co2").examples
    assert ex.payload is not None and ex.f_port is not None
    d = decoders.decode("ttn:elsys/ers-co2", ex.f_port, ex.payload)
    assert differences(ex.data, decoders.decode_result_json("x", d)["object"]) == []
    assert dict(d.measurements) == {"co2_ppm": 776, "temperature_c": 22.6, "humidity_pct": 41}
    assert dict(d.extras) == {"light": 39, "motion": 6}


def test_codecs_verify_runs_the_repository_examples(ttn_repo: None) -> None:
    rows = decoders.verify_codecs(["ttn:elsys/ers-co2", "elsys/ers-co2"])
    assert rows[0] == {
        "codec": "ttn:elsys/ers-co2",
        "kind": "uplink",
        "description": "ERS CO2 temperature, humidity, light, motion and co2",
        "ok": True,
        "problems": [],
    }
    assert rows[1]["kind"] == "none" and rows[1]["ok"] is True


def test_codecs_verify_reports_a_mismatch(tmp_path: Path) -> None:
    vendor = tmp_path / "vendor" / "elsys"
    vendor.mkdir(parents=True)
    for name in ("elsys.js", "ers-co2.yaml"):
        (vendor / name).write_bytes((TTN / "vendor" / "elsys" / name).read_bytes())
    codec_yaml = (TTN / "vendor" / "elsys" / "ers-co2-codec.yaml").read_text()
    (vendor / "ers-co2-codec.yaml").write_text(codec_yaml.replace("co2: 776", "co2: 777"))
    decoders.configure_codecs(decoders.CodecSettings(ttn_repository=tmp_path))
    try:
        (row,) = decoders.verify_codecs(["ttn:elsys/ers-co2"])
    finally:
        decoders.configure_codecs(decoders.CodecSettings())
    assert row["ok"] is False
    assert row["problems"] == ["data.co2: expected 777, got 776"]


# --- ChirpStack device profiles: Decentlab DL-DS18 (temperature) and DL-MBX (distance) -------


@pytest.mark.parametrize(
    ("file", "case"), _cases("test_decode_dl-ds18.json") + _cases("test_decode_dl-mbx.json")
)
def test_chirpstack_codec_decodes_its_examples(file: str, case: dict[str, Any]) -> None:
    model = file.removeprefix("test_decode_").removesuffix(".json")
    d = decoders.decode(
        f"js:{CS / model}.js", case["input"]["fPort"], bytes(case["input"]["bytes"])
    )
    data = case["expected"]["data"]
    assert differences(data, decoders.decode_result_json("x", d)["object"]) == []
    # {value, unit} objects become the presets' measurements, converted by their unit
    expected = {"battery_v": data["battery_voltage"]["value"]}
    if "temperature" in data:
        expected["temperature_c"] = data["temperature"]["value"]
    if "distance" in data:
        expected["distance_mm"] = data["distance"]["value"]
    assert dict(d.measurements) == expected


def test_chirpstack_distance_feeds_the_bin_derivation() -> None:
    (_, case), _ = _cases("test_decode_dl-mbx.json")
    d = decoders.decode(
        f"js:{CS / 'dl-mbx'}.js",
        1,
        bytes(case["input"]["bytes"]),
        {"empty_distance_mm": 1500, "full_distance_mm": 200},
    )
    assert d.measurements["distance_mm"] == 1234
    assert d.measurements["fill_pct"] == round(100 * (1500 - 1234) / 1300, 1)


@pytest.mark.parametrize(
    ("file", "case"), _cases("test_encode_dl-ds18.json") + _cases("test_encode_dl-mbx.json")
)
def test_chirpstack_encode_downlink_examples(file: str, case: dict[str, Any]) -> None:
    model = file.removeprefix("test_encode_").removesuffix(".json")
    port, raw = decoders.encode_downlink(f"js:{CS / model}.js", case["input"]["data"])
    assert (port, list(raw)) == (case["expected"]["fPort"], case["expected"]["bytes"])


def test_chirpstack_encode_downlink_errors_are_codec_errors() -> None:
    with pytest.raises(decoders.CodecError) as err:
        decoders.encode_downlink(f"js:{CS / 'dl-ds18'}.js", {"command": "no such command"})
    assert err.value.reason in ("codec_js_throw", "codec_js_errors")


# --- ChirpStack v4 ES module: the codec plugin skeleton, unmodified -------------------------


@pytest.mark.skipif(not SKELETON.exists(), reason="see tests/fixtures/codecs/README.md")
def test_es_module_skeleton_loads_and_runs() -> None:
    entry = decoders.get_codec(f"js:{SKELETON}")
    assert entry.fn.style == "uplink"  # type: ignore[attr-defined]
    assert "encodeDownlink" in entry.fn.functions  # type: ignore[attr-defined]
    d = decoders.decode(f"js:{SKELETON}", 10, b"\x01\x02")
    assert dict(d.object) == {} and dict(d.measurements) == {}
    # its encodeDownlink passes `data` through as the bytes: a list is a payload, an object not
    with pytest.raises(decoders.CodecError, match="bytes must be a list"):
        decoders.encode_downlink(f"js:{SKELETON}", {"interval": 600}, f_port=7)
