"""QuickJS codecs: the three styles, limits (time, memory), failures, and the shipped samples
agreeing with the built-in codecs through field_map."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import decoders
from decoders.js import JsCodec
from gateway_agent.errors import CodecError

TTN = """
function decodeUplink(input) {
  if (input.bytes.length === 0) return {errors: ["empty payload"]};
  if (input.bytes[0] === 1) while (true) {}
  if (input.bytes[0] === 2) { var a = []; while (true) a.push("grow" + a.length); }
  if (input.bytes[0] === 3) { var s = "x"; while (true) s = s + s; }
  if (input.bytes[0] === 4) throw new Error("bad byte");
  if (input.bytes[0] === 5) return 42;
  if (input.bytes[0] === 6) return "text";
  if (input.bytes[0] === 7) return {data: [1, 2]};
  if (input.bytes[0] === 8) { function r(n) { return r(n + 1) + 1; } return r(0); }
  if (input.bytes[0] === 9) return {data: {co2_ppm: 1, x: 2}, warnings: ["w1"], errors: []};
  if (input.bytes[0] === 10) return undefined;
  if (input.bytes[0] === 11) { var c = {}; c.self = c; return {data: c}; }
  return {data: {port: input.fPort, first: input.bytes[0], n: input.bytes.length,
                 ok: true, temperature_c: 21.5, label: "x"}};
}
"""


@pytest.fixture(scope="module")
def ttn() -> decoders.Codec:
    js = JsCodec("test/ttn", TTN, time_limit_s=0.1, memory_limit_bytes=8 * 1024 * 1024)
    return decoders.Codec("test/ttn", js, vendor="test", source="js")


def run(entry: decoders.Codec, payload: bytes, port: int = 1, **settings: Any) -> decoders.Decoded:
    decoders.registry.CODECS[entry.id] = entry
    try:
        return decoders.decode(entry.id, port, payload, settings)
    finally:
        del decoders.registry.CODECS[entry.id]


def test_ttn_style_ok(ttn: decoders.Codec) -> None:
    d = run(ttn, bytes([200, 1, 2]), port=17)
    assert dict(d.measurements) == {"temperature_c": 21.5}
    assert dict(d.extras) == {"port": 17, "first": 200, "n": 3}
    assert dict(d.flags) == {"ok": True}
    assert d.object["label"] == "x"


def test_warnings_pass_through(ttn: decoders.Codec) -> None:
    d = run(ttn, bytes([9]))
    assert d.warnings == ("w1",)
    assert dict(d.measurements) == {"co2_ppm": 1}


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (1, "codec_js_timeout"),
        (2, "codec_js_memory"),
        (3, "codec_js_memory"),
        (4, "codec_js_throw"),
        (5, "codec_js_result"),
        (6, "codec_js_result"),
        (7, "codec_js_result"),
        (8, "codec_js_stack"),
        (10, "codec_js_result"),
        (11, "codec_js_throw"),
    ],
)
def test_failures_become_codec_error_and_next_decode_works(
    ttn: decoders.Codec, first: int, reason: str
) -> None:
    with pytest.raises(CodecError) as err:
        run(ttn, bytes([first]))
    assert err.value.reason == reason
    assert err.value.codec == "test/ttn"
    assert run(ttn, bytes([200])).extras["first"] == 200


def test_errors_array_is_codec_error(ttn: decoders.Codec) -> None:
    with pytest.raises(CodecError, match="empty payload") as err:
        run(ttn, b"")
    assert err.value.reason == "codec_js_errors"


def test_repeated_oom_and_timeouts_keep_working(ttn: decoders.Codec) -> None:
    for _ in range(3):
        for first in (1, 2):
            with pytest.raises(CodecError):
                run(ttn, bytes([first]))
        assert run(ttn, bytes([200, 0])).extras["n"] == 2


def test_payload_is_data_not_code() -> None:
    echo = JsCodec("test/echo", "function Decoder(bytes, port) { return {b: bytes, p: port}; }")
    d = echo(3, b"'); throw 1; //\x00\xff", {})
    assert list(d.object["b"]) == list(b"'); throw 1; //\x00\xff")
    assert d.object["p"] == 3


def test_chirpstack_variables() -> None:
    cs = JsCodec(
        "test/cs",
        "function decodeUplink(input) { return {data: {v: input.variables.k, p: input.fPort}}; }",
    )
    d = cs(7, b"\x01", {"variables": {"k": "abc"}})
    assert dict(d.object) == {"v": "abc", "p": 7}


def test_v2_non_object_is_error() -> None:
    v2 = JsCodec("test/v2", "function Decoder(bytes, port) { return bytes.length; }")
    with pytest.raises(CodecError) as err:
        v2(1, b"\x01\x02", {})
    assert err.value.reason == "codec_js_result"


@pytest.mark.parametrize(
    "source", ["var x = 1;", "function decodeUplink(", "while(true){}", "throw new Error('x')"]
)
def test_load_failures(source: str) -> None:
    with pytest.raises(CodecError) as err:
        JsCodec("test/bad", source, time_limit_s=0.05)
    assert err.value.reason == "codec_js_load"


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CodecError) as err:
        decoders.load_js_codec(tmp_path / "nope.js")
    assert err.value.reason == "codec_js_load"


def test_js_path_codec_is_cached_and_listed(tmp_path: Path) -> None:
    f = tmp_path / "c.js"
    f.write_text("function Decoder(bytes, port) { return {battery_pct: bytes[0]}; }")
    cid = f"js:{f}"
    d = decoders.decode(cid, 1, b"\x50")
    assert dict(d.measurements) == {"battery_pct": 80}
    assert decoders.get_codec(cid) is decoders.get_codec(cid)
    row = next(r for r in decoders.list_codecs() if r["id"] == cid)
    assert row["source"] == "js"


def test_limits_are_configurable(tmp_path: Path) -> None:
    f = tmp_path / "slow.js"
    f.write_text(
        "function Decoder(bytes, port) { var t = 0; for (var i = 0; i < bytes[0] * 300000; i++)"
        " t += i; return {t: t}; }"
    )
    entry = decoders.load_js_codec(f, "test/slow", time_limit_s=5.0)
    assert entry(1, b"\x02", {}).extras["t"] > 0
    with pytest.raises(ValueError, match="positive"):
        JsCodec("x", "function Decoder(){}", time_limit_s=0)


def test_threads_share_one_runtime_safely(ttn: decoders.Codec) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(20):
            d = ttn.fn(1, bytes([n, i]), {})
            with lock:
                results.append(int(d.extras["first"]))

    threads = [threading.Thread(target=work, args=(100 + n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted([100 + n for n in range(4) for _ in range(20)])


# --- shipped samples == built-in codecs through field_map ------------------------------------

EM500_MAP = {
    "battery": "battery_pct",
    "temperature": "temperature_c",
    "humidity": "humidity_pct",
    "co2": "co2_ppm",
    "pressure": "pressure_hpa",
}
LDDS_MAP = {"battery_mv": {"name": "battery_v", "scale": 0.001}, "liquid_level_mm": "level_mm"}
ELSYS_MAP = {
    "temperature": "temperature_c",
    "humidity": "humidity_pct",
    "co2": "co2_ppm",
    "vdd": {"name": "battery_v", "scale": 0.001},
}
SAMPLES = [
    ("js:milesight-em500-co2", EM500_MAP, "milesight/em500-co2", 85,
     "01 75 46 03 67 BE 00 04 68 64 05 7D 20 03 06 73 A1 27"),
    ("js:milesight-em500-co2", EM500_MAP, "milesight/em500-co2", 85, "03 67 7C FF 04 68 01"),
    ("js:milesight-em500-co2", EM500_MAP, "milesight/em500-co2", 85, "01 75 46 09 99 00"),
    ("js:dragino-ldds20-chirpstack", LDDS_MAP, "dragino/ldds20", 2, "0C F0 04 D2 00 00 00 01"),
    ("js:dragino-ldds20-chirpstack", LDDS_MAP, "dragino/ldds20", 2, "CC E4 00 00 00 00 00 00"),
    ("js:dragino-ldds20-chirpstack", LDDS_MAP, "dragino/ldds20", 2, "0E 10 03 52 01 00 FA 01"),
    ("js:elsys-ers-co2-v2", ELSYS_MAP, "elsys/ers-co2", 1,
     "01 00 CB 02 37 04 01 2C 05 00 06 03 E8 07 0E 10"),
    ("js:elsys-ers-co2-v2", ELSYS_MAP, "elsys/ers-co2", 1, "01 FF F6 02 5A 06 07 D0 07 0D 48"),
]  # fmt: skip


@pytest.mark.parametrize(("js_id", "fmap", "builtin", "port", "hexstr"), SAMPLES)
def test_sample_matches_builtin(
    js_id: str, fmap: dict[str, Any], builtin: str, port: int, hexstr: str
) -> None:
    payload = bytes.fromhex(hexstr.replace(" ", ""))
    extra_settings = {"mount_height_mm": 3000}
    js = decoders.decode(js_id, port, payload, {"field_map": fmap, **extra_settings})
    native = decoders.decode(builtin, port, payload, extra_settings)
    assert dict(js.measurements) == pytest.approx(dict(native.measurements), rel=1e-9)
    for flag, value in native.flags.items():
        if flag != "truncated":
            assert js.flags[flag] == value


@pytest.mark.parametrize(("js_id", "builtin", "port", "hexstr"), [
    ("js:milesight-em500-co2", "milesight/em500-co2", 85, "01 75 46 03 67"),
    ("js:dragino-ldds20-chirpstack", "dragino/ldds20", 2, "0C F0 04 D2 00 00 00"),
    ("js:dragino-ldds20-chirpstack", "dragino/ldds20", 3, "0C F0 04 D2 00 00 00 01"),
    ("js:elsys-ers-co2-v2", "elsys/ers-co2", 1, "01 00"),
])  # fmt: skip
def test_sample_rejects_what_builtin_rejects(
    js_id: str, builtin: str, port: int, hexstr: str
) -> None:
    payload = bytes.fromhex(hexstr.replace(" ", ""))
    for cid in (js_id, builtin):
        with pytest.raises(CodecError):
            decoders.decode(cid, port, payload)


def test_sample_files_exist_in_three_styles() -> None:
    styles = {
        name: decoders.get_codec(f"js:{name}").fn.style  # type: ignore[attr-defined]
        for name in ("milesight-em500-co2", "dragino-ldds20-chirpstack", "elsys-ers-co2-v2")
    }
    assert styles == {
        "milesight-em500-co2": "uplink",
        "dragino-ldds20-chirpstack": "uplink",
        "elsys-ers-co2-v2": "v2",
    }


def test_data_prefix_in_field_map_names_the_ttn_data_object() -> None:
    payload = bytes.fromhex("057D2003")
    d = decoders.decode(
        "js:milesight-em500-co2", 85, payload, {"field_map": {"data.co2": "co2_ppm"}}
    )
    assert dict(d.measurements) == {"co2_ppm": 800}
    assert "co2" not in d.extras
