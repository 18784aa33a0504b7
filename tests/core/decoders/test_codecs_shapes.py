"""Issue #21, codec half: the three JS shapes and their optional entry points (encodeDownlink,
decodeDownlink, normalizeUplink), normalized names without field_map, the YAML subset, the
`ttn:` resolver and `[codecs]` settings, and `decode --field-map / --device` on the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import decoders
from decoders.js import JsCodec
from decoders.ttnrepo import resolve
from decoders.yamlsub import YamlError, loads
from gateway_agent.errors import CodecError, ConfigError

ROOT = Path(__file__).resolve().parents[3]

# Written for this test in TTN Device Repository style: all four entry points.
TTN_FULL = """
function decodeUplink(input) {
  if (input.bytes.length < 3) return {errors: ["need 3 bytes", "got " + input.bytes.length]};
  var w = input.bytes[2] === 0 ? ["battery flat"] : [];
  return {data: {co2: (input.bytes[0] << 8) | input.bytes[1], level: "ok", pct: input.bytes[2]},
          warnings: w};
}
function normalizeUplink(input) {
  if (input.data.co2 === 0) return {errors: ["sensor warming up"]};
  return {data: {air: {co2: input.data.co2, location: "indoor"}, battery: 3.1}};
}
function encodeDownlink(input) {
  if (typeof input.data.interval !== "number") return {errors: ["interval is required"]};
  return {bytes: [1, input.data.interval >> 8, input.data.interval & 255], fPort: 10,
          warnings: []};
}
function decodeDownlink(input) {
  return {data: {interval: (input.bytes[1] << 8) | input.bytes[2]}, warnings: [], errors: []};
}
"""


@pytest.fixture(scope="module")
def full() -> decoders.Codec:
    js = JsCodec("test/full", TTN_FULL)
    entry = decoders.Codec("test/full", js, vendor="test", source="js")
    decoders.registry.CODECS[entry.id] = entry
    yield entry
    del decoders.registry.CODECS[entry.id]


def test_optional_entry_points_are_found(full: decoders.Codec) -> None:
    assert full.fn.functions == {"encodeDownlink", "decodeDownlink", "normalizeUplink"}  # type: ignore[attr-defined]


def test_normalize_uplink_output_becomes_measurements(full: decoders.Codec) -> None:
    d = decoders.decode("test/full", 1, bytes([0x03, 0x20, 0x50]))
    assert dict(d.measurements) == {"co2_ppm": 800, "battery_v": 3.1}
    assert dict(d.object) == {"co2": 800, "level": "ok", "pct": 80}  # strings kept
    assert dict(d.extras) == {"pct": 80}


def test_errors_and_warnings_surface(full: decoders.Codec) -> None:
    with pytest.raises(CodecError) as err:
        decoders.decode("test/full", 1, b"\x01")
    assert err.value.reason == "codec_js_errors"
    assert err.value.errors == ["need 3 bytes", "got 1"]  # type: ignore[attr-defined]
    assert "need 3 bytes; got 1" in str(err.value)
    d = decoders.decode("test/full", 1, bytes([0, 0, 0]))
    assert d.warnings == ("battery flat", "normalizeUplink: codec errors: sensor warming up")
    assert dict(d.measurements) == {"co2_ppm": 0}  # the common name still applies


def test_encode_and_decode_downlink(full: decoders.Codec) -> None:
    assert decoders.encode_downlink("test/full", {"interval": 600}) == (10, b"\x01\x02\x58")
    assert decoders.decode_downlink("test/full", 10, b"\x01\x02\x58") == {"interval": 600}
    with pytest.raises(CodecError) as err:
        decoders.encode_downlink("test/full", {})
    assert err.value.errors == ["interval is required"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("function encodeDownlink(i) { return {bytes: [256]}; }", "bytes must be a list"),
        ("function encodeDownlink(i) { return {bytes: [1.5]}; }", "bytes must be a list"),
        ("function encodeDownlink(i) { return {bytes: [1]}; }", "fPort must be 1..223, got None"),
        ("function encodeDownlink(i) { return {bytes: [], fPort: 0}; }", "fPort must be 1..223"),
        ("function encodeDownlink(i) { return 5; }", "returned int"),
        ("function encodeDownlink(i) { while (true) {} }", "time limit of 100 ms exceeded"),
        ("", r"defines no encodeDownlink\(input\)"),
    ],
)
def test_encode_downlink_failures(source: str, message: str) -> None:
    js = JsCodec("test/enc", "function decodeUplink(i) { return {data: {}}; }\n" + source)
    entry = decoders.Codec("test/enc", js, source="js")
    decoders.registry.CODECS["test/enc"] = entry
    try:
        with pytest.raises(CodecError, match=message):
            decoders.encode_downlink("test/enc", {"a": 1})
        # the default fPort is used when the codec names none
        if "got None" in message:
            assert decoders.encode_downlink("test/enc", {}, f_port=3) == (3, b"\x01")
    finally:
        del decoders.registry.CODECS["test/enc"]


def test_builtin_codec_has_no_encoder() -> None:
    with pytest.raises(CodecError) as err:
        decoders.encode_downlink("elsys/ers-co2", {"a": 1})
    assert err.value.reason == "codec_js_missing"


# --- ChirpStack v4 ES modules ---------------------------------------------------------------


def test_es_module_exports_run_unmodified() -> None:
    src = """
const SCALE = 10;
export function decodeUplink(input) {
  return {data: {temperature: helper(input.bytes) / SCALE}};
}
function helper(b) { return (b[0] << 8) | b[1]; }
export const encodeDownlink = (input) => ({bytes: [input.data.on ? 1 : 0]});
function dd(input) { return {data: {on: input.bytes[0] === 1}}; }
export { dd as decodeDownlink, helper };
"""
    js = JsCodec("t/esm", src)
    assert js.style == "uplink"
    assert js.functions == {"encodeDownlink", "decodeDownlink"}
    assert dict(js(1, b"\x00\xd7", {}).measurements) == {"temperature_c": 21.5}


def test_es_module_import_is_refused_at_load() -> None:
    with pytest.raises(CodecError, match="import statements are not supported") as err:
        JsCodec("t/imp", 'import { Buffer } from "buffer";\nexport function decodeUplink(i) {}')
    assert err.value.reason == "codec_js_load"


def test_legacy_decoder_keeps_working_and_gets_common_names() -> None:
    js = JsCodec("t/v2", "function Decoder(bytes, port) { return {temp: bytes[0], vdd: 3300}; }")
    d = js(1, b"\x15", {})
    assert dict(d.measurements) == {"temperature_c": 21, "battery_v": 3.3}


# --- common names and units -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "measurements", "extras"),
    [
        ({"co2": 415, "humidity": 40.5}, {"co2_ppm": 415, "humidity_pct": 40.5}, {}),
        ({"battery": 88, "distance": 1500}, {"battery_pct": 88, "distance_mm": 1500}, {}),
        ({"battery_mv": 3600}, {"battery_v": 3.6}, {}),
        ({"distance": {"value": 1.5, "unit": "m"}}, {"distance_mm": 1500.0}, {}),
        ({"pressure": {"value": 101325, "unit": "Pa"}}, {"pressure_hpa": 1013.25}, {}),
        ({"temperature": {"value": 70, "unit": "°F"}}, {}, {"temperature_value": 70}),
        ({"tvoc": 37, "pm2_5": 12}, {"pm2_5_ugm3": 12}, {"tvoc": 37}),
        ({"tvoc": {"value": 120, "unit": "ppb"}}, {}, {"tvoc_value": 120}),
        ({"co2": "high"}, {}, {}),
        ({"nested": {"co2": 500}}, {}, {"nested_co2": 500}),
    ],
)
def test_common_names(
    data: dict[str, Any], measurements: dict[str, float], extras: dict[str, Any]
) -> None:
    js = JsCodec("t/common", f"function decodeUplink(i) {{ return {{data: {json.dumps(data)}}}; }}")
    d = js(1, b"", {})
    assert dict(d.measurements) == pytest.approx(measurements)
    assert dict(d.extras) == extras


def test_field_map_overrides_common_names() -> None:
    js = JsCodec("t/fm", "function decodeUplink(i) { return {data: {temperature: 215}}; }")
    entry = decoders.Codec("t/fm", js, source="js")
    decoders.registry.CODECS["t/fm"] = entry
    try:
        fm = {"temperature": {"name": "temperature_c", "scale": 0.1}}
        d = decoders.decode("t/fm", 1, b"", {"field_map": fm})
    finally:
        del decoders.registry.CODECS["t/fm"]
    assert d.measurements["temperature_c"] == pytest.approx(21.5)


# --- YAML subset, ttn: resolver, [codecs] -----------------------------------------------------


def test_yaml_subset() -> None:
    doc = loads(
        "a: 1 # c\nb:\n  - # item\n    x: '1.0'\n    y: [0x01, 2,\n        3]\n  - plain text\n"
        'c: "q: #"\nd: |\n  one\n  two\ne: {k: v, n: ~}\nf: -2.5\ng:\n- s\n'
    )
    assert doc == {
        "a": 1,
        "b": [{"x": "1.0", "y": [1, 2, 3]}, "plain text"],
        "c": "q: #",
        "d": "one\ntwo\n",
        "e": {"k": "v", "n": None},
        "f": -2.5,
        "g": ["s"],
    }
    with pytest.raises(YamlError, match="line 2"):
        loads("a: 1\n   b: 2\n")


def _repo(tmp: Path, codec_yaml: str, device: str | None = None) -> Path:
    v = tmp / "vendor" / "acme"
    v.mkdir(parents=True)
    (v / "m1.yaml").write_text(
        device
        or "firmwareVersions:\n  - version: '1.0'\n    profiles:\n      EU863-870:\n"
        "        codec: m1-codec\n  - version: '2.0'\n    profiles:\n      EU863-870:\n"
        "        codec: m2-codec\n"
    )
    (v / "m1-codec.yaml").write_text("uplinkDecoder:\n  fileName: old.js\n")
    (v / "m2-codec.yaml").write_text(codec_yaml)
    (v / "m2.js").write_text(TTN_FULL)
    return tmp


def test_resolver_picks_newest_firmware_and_reads_all_examples(tmp_path: Path) -> None:
    root = _repo(
        tmp_path,
        "uplinkDecoder:\n  fileName: m2.js\n  examples:\n    - description: up\n      input:\n"
        "        fPort: 1\n        bytes: [3, 32, 80]\n      output:\n        data:\n"
        "          co2: 800\n          level: ok\n          pct: 80\n      normalizedOutput:\n"
        "        data:\n          - air:\n              co2: 800\n              location: indoor\n"
        "            battery: 3.1\n"
        "downlinkEncoder:\n  fileName: m2.js\n  examples:\n    - description: enc\n      input:\n"
        "        data:\n          interval: 600\n      output:\n        bytes: [1, 2, 88]\n"
        "        fPort: 10\n"
        "downlinkDecoder:\n  fileName: m2.js\n  examples:\n    - description: dec\n      input:\n"
        "        fPort: 10\n        bytes: [1, 2, 88]\n      output:\n        data:\n"
        "          interval: 600\n",
    )
    model = resolve(root, "acme/m1")
    assert model.codec_name == "m2-codec"
    assert [e.kind for e in model.examples] == ["uplink", "downlink-encode", "downlink-decode"]
    assert resolve(root, "acme/m1/1.0").codec_name == "m1-codec"
    decoders.configure_codecs(decoders.CodecSettings(ttn_repository=root))
    try:
        rows = decoders.verify_codecs(["ttn:acme/m1"])
        assert [r["ok"] for r in rows] == [True, True, True], rows
        assert decoders.encode_downlink("ttn:acme/m1", {"interval": 600}) == (10, b"\x01\x02\x58")
    finally:
        decoders.configure_codecs(decoders.CodecSettings())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("acme", "expected ttn:VENDOR/MODEL"),
        ("../x/m1", "expected ttn:VENDOR/MODEL"),
        ("acme/nope", "cannot read"),
        ("acme/m1/9.9", "no firmware '9.9' \\(known: 1.0, 2.0\\)"),
        ("acme/m1/2.0/US902-928", "no band 'US902-928'"),
    ],
)
def test_resolver_errors(tmp_path: Path, spec: str, message: str) -> None:
    root = _repo(tmp_path, "uplinkDecoder:\n  fileName: m2.js\n")
    with pytest.raises(CodecError, match=message):
        resolve(root, spec)


def test_ttn_id_without_repository_is_unknown_codec() -> None:
    with pytest.raises(CodecError, match=r"\[codecs\] ttn_repository") as err:
        decoders.decode("ttn:acme/m1", 1, b"")
    assert err.value.reason == "unknown_codec"


def test_load_codec_settings(tmp_path: Path) -> None:
    assert decoders.load_codec_settings(None).ttn_repository is None
    s = decoders.load_codec_settings({"ttn_repository": "repo"}, base_dir=tmp_path)
    assert s.ttn_repository == tmp_path / "repo"
    with pytest.raises(ConfigError, match="codecs.ttn_repository"):
        decoders.load_codec_settings({"ttn_repository": 5})
    with pytest.raises(ConfigError, match="codecs.other"):
        decoders.load_codec_settings({"other": 1})


# --- CLI: decode --field-map, --device, the object --------------------------------------------


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", *args],
        capture_output=True, text=True, timeout=30, cwd=cwd,
    )  # fmt: skip


def test_cli_field_map_and_object() -> None:
    js = "js:elsys-ers-co2-v2"
    a = _cli("decode", "--codec", js, "--fport", "1", "0400C8", "--field-map", "light=co2_ppm",
             "--json")  # fmt: skip
    b = _cli("decode", "--codec", js, "--fport", "1", "0400C8", "--field-map",
             '{"light": {"name": "co2_ppm", "scale": 2}}', "--json")  # fmt: skip
    bad = _cli("decode", "--codec", js, "--fport", "1", "0400C8", "--field-map", "light")
    assert a.returncode == 0, a.stderr
    assert json.loads(a.stdout)["measurements"] == {"co2_ppm": 200}
    assert json.loads(a.stdout)["object"] == {"light": 200}
    assert json.loads(b.stdout)["measurements"] == {"co2_ppm": 400.0}
    assert bad.returncode == 2 and "field=name" in bad.stderr


def test_cli_device_uses_its_codec_and_settings(tmp_path: Path) -> None:
    devices = tmp_path / "devices.toml"
    devices.write_text(
        '[[device]]\ndev_eui = "70b3d57ed0000001"\ncodec = "milesight/em310-udl"\n'
        'dev_addr = "26011bda"\nnwk_s_key = "' + "11" * 16 + '"\napp_s_key = "' + "22" * 16 + '"\n'
        "[device.settings]\nempty_distance_mm = 1200\nfull_distance_mm = 150\n"
    )
    devices.chmod(0o600)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\ngateway_id = "gw"\nstate_dir = "{tmp_path}"\ndevices_file = "devices.toml"\n'
    )
    ok = _cli("decode", "--device", "70B3D57ED0000001", "--config", str(cfg), "--fport", "85",
              "0382E8030400 00", "--json")  # fmt: skip
    missing = _cli("decode", "--device", "70b3d57ed0000002", "--config", str(cfg), "--fport",
                   "85", "00")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["codec"] == "milesight/em310-udl"
    assert out["measurements"]["fill_pct"] == round(100 * (1200 - 1000) / 1050, 1)
    assert missing.returncode == 1 and "no device 70b3d57ed0000002" in missing.stderr
