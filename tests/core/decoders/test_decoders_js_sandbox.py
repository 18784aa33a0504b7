"""The QuickJS sandbox bounds everything a codec can make the host do (issue #16 item 6): thrown
values, results, loading. Hostile codecs run in a subprocess with a timeout, so a regression that
wedges the interpreter fails these tests instead of hanging the suite."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT_S = 20

# Each hostile case is one call on a long-lived codec, followed by a good decode (payload 200) that
# must still work.
HOSTILE = r"""
function decodeUplink(input) {
  var b = input.bytes[0];
  if (b === 1) throw {toString: function () { while (true) {} }};
  if (b === 3) throw undefined;
  if (b === 4) throw 5;
  if (b === 5) throw "plain text";
  if (b === 6) throw Object.create(null);
  if (b === 7) throw {toString: function () { throw new Error("inner"); }};
  if (b === 8) throw new Proxy({}, {get: function () { while (true) {} }});
  if (b === 9) { var p = {}; p[Symbol.toPrimitive] = function () { while (true) {} }; throw p; }
  if (b === 10) throw new Error(new Array(100001).join("m"));
  if (b === 11) {
    Error.prototype.toString = function () { while (true) {} };
    try { InternalError.prototype.toString = function () { while (true) {} }; } catch (e) {}
    try { Object.prototype[Symbol.toPrimitive] = function () { while (true) {} }; } catch (e) {}
    while (true) {}
  }
  if (b === 12) return {get data() { while (true) {} }};
  if (b === 13) return new Proxy({}, {ownKeys: function () { while (true) {} }});
  if (b === 14) { var o = {}; for (var i = 0; i < 1e7; i++) o["k" + i] = i; return {data: o}; }
  if (b === 15) return {data: {s: "x".repeat(100 * 1024 * 1024)}};
  if (b === 16) return {data: {s: "x".repeat(1536 * 1024)}};
  if (b === 17) {
    input.bytes.fill(7); input.bytes.length = 1000000; input.bytes.x = 1;
    return {data: {n: input.bytes.length}};
  }
  if (b === 18) { var r = function (n) { return r(n + 1) + 1; }; return r(0); }
  if (b === 19) throw {toString: function () { return this.toString(); }};
  if (b === 20) { var e = new Error("x"); Object.defineProperty(e, "message", {get: function () { while (true) {} }}); throw e; }
  if (b === 21) return {data: {toJSON: function () { while (true) {} }}};
  if (b === 22) { var n = new Number(1); n.valueOf = function () { while (true) {} }; return {data: {n: n}}; }
  if (b === 23) throw Symbol("sym");
  if (b === 24) { var a = []; while (true) a.push("grow" + a.length); }
  if (b === 26) throw new Proxy({}, {getPrototypeOf: function () { throw {toString: function () { while (true) {} }}; }});
  if (b === 27) throw "\ud800 lone surrogate";
  if (b === 28) throw new Error("first line\nsecond line");
  if (b === 25) { JSON.stringify = function () { while (true) {} }; String = null; return {data: {ok: 1}}; }
  return {data: {first: b, n: input.bytes.length}};
}
"""

# No statement here can throw null, so a caught null can only be QuickJS out of memory.
PLAIN_SOURCE = """
function decodeUplink(input) {
  if (input.bytes[0] === 24) { var a = []; while (true) a.push("grow" + a.length); }
  if (input.bytes[0] === 1) throw new Error("x");
  return {data: {first: input.bytes[0]}};
}
"""

NULL_SOURCE = "function decodeUplink(input) { if (input.bytes[0] === 2) throw null; return {data: {first: input.bytes[0]}}; }"  # noqa: E501

# (case id, source, first byte, expected reason, message predicate as (kind, text))
CASES: list[tuple[str, str, int, str, tuple[str, str]]] = [
    ("throw-looping-toString", "hostile", 1, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("throw-null", "null", 2, "codec_js_throw", ("startswith", "codec threw null")),
    ("throw-undefined", "hostile", 3, "codec_js_throw", ("eq", "codec threw undefined")),
    ("throw-number", "hostile", 4, "codec_js_throw", ("eq", "codec threw 5")),
    ("throw-string", "hostile", 5, "codec_js_throw", ("eq", "codec threw plain text")),
    ("throw-no-prototype", "hostile", 6, "codec_js_throw", ("eq", "codec threw [object Object]")),
    ("throw-toString-throws", "hostile", 7, "codec_js_throw", ("eq", "codec threw [object Object]")),
    ("throw-looping-proxy", "hostile", 8, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("throw-looping-toPrimitive", "hostile", 9, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("throw-huge-message", "hostile", 10, "codec_js_throw", ("maxlen", "codec threw Error: mmm")),
    ("tampered-error-prototypes-then-loop", "hostile", 11, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("result-getter-loops", "hostile", 12, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("result-proxy-ownKeys-loops", "hostile", 13, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("result-1e7-keys", "hostile", 14, "codec_js_limit", ("in", "time limit of 100 ms exceeded|memory limit exceeded")),
    ("result-100MB-string", "hostile", 15, "codec_js_memory", ("eq", "memory limit exceeded")),
    ("result-over-1MiB-json", "hostile", 16, "codec_js_result", ("startswith", "result is larger than")),
    ("bytes-mutation", "hostile", 17, "", ("eq", "")),
    ("infinite-recursion", "hostile", 18, "codec_js_stack", ("eq", "stack overflow")),
    ("throw-recursive-toString", "hostile", 19, "codec_js_throw", ("eq", "codec threw [object Object]")),
    ("throw-error-looping-message-getter", "hostile", 20, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("result-looping-toJSON", "hostile", 21, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("result-looping-valueOf", "hostile", 22, "codec_js_timeout", ("eq", "time limit of 100 ms exceeded")),
    ("throw-symbol", "hostile", 23, "codec_js_throw", ("eq", "codec threw Symbol(sym)")),
    ("out-of-memory-small-allocations", "plain", 24, "codec_js_memory", ("eq", "memory limit exceeded")),
    ("out-of-memory-where-throw-null-is-possible", "hostile", 24, "codec_js_throw",
     ("eq", "codec threw null (QuickJS also throws null when out of memory)")),
    ("throw-proxy-whose-getPrototypeOf-throws-a-looping-value", "hostile", 26, "codec_js_throw", ("eq", "codec threw [object Object]")),
    ("throw-lone-surrogate", "hostile", 27, "codec_js_throw", ("eq", "codec threw \ud800 lone surrogate")),
    ("throw-multiline-message", "hostile", 28, "codec_js_throw", ("eq", "codec threw Error: first line")),
    ("replaced-JSON-and-String", "hostile", 25, "", ("eq", "")),
]  # fmt: skip

# Runs in the child: one JSON line per case, flushed, so a hang names the case that hung.
CHILD = r"""
import json, sys, time
from decoders.js import JsCodec
from gateway_agent.errors import CodecError
spec = json.loads(sys.stdin.read())
codecs = {}
for name, source in spec["sources"].items():
    codecs[name] = JsCodec("t/" + name, source, time_limit_s=0.1, memory_limit_bytes=8 << 20)
for case_id, name, first in spec["cases"]:
    codec = codecs[name]
    start = time.monotonic()
    row = {"id": case_id, "reason": "", "message": ""}
    try:
        row["object"] = codec(1, bytes([first, 9]), {}).object
    except CodecError as e:
        row["reason"], row["message"] = e.reason, str(e)
    row["seconds"] = time.monotonic() - start
    row["next_ok"] = codec(1, bytes([200]), {}).object.get("first") == 200
    print(json.dumps(row, default=dict), flush=True)
"""


def _run_child(cases: list[tuple[str, str, int]], sources: dict[str, str]) -> dict[str, Any]:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=json.dumps({"cases": cases, "sources": sources}),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=ROOT,
        )
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = f"child hung for {TIMEOUT_S} s"
    rows = {row["id"]: row for row in map(json.loads, out.splitlines())}
    rows["__stderr__"] = err
    return rows


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    sources = {"hostile": HOSTILE, "null": NULL_SOURCE, "plain": PLAIN_SOURCE}
    return _run_child([(cid, src, first) for cid, src, first, _, _ in CASES], sources)


@pytest.mark.parametrize(
    ("case_id", "reason", "expect"), [(c[0], c[3], c[4]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_codec_is_bounded_and_honest(
    results: dict[str, Any], case_id: str, reason: str, expect: tuple[str, str]
) -> None:
    row = results.get(case_id)
    assert row is not None, (
        f"no result (a hang or crash before it): {results['__stderr__'][-2000:]}"
    )
    if reason == "codec_js_limit":
        assert row["reason"] in ("codec_js_timeout", "codec_js_memory"), row
    else:
        assert row["reason"] == reason, row
    kind, text = expect
    message = row["message"]
    if kind == "eq":
        assert message == text, row
    elif kind == "startswith":
        assert message.startswith(text), row
    elif kind == "in":
        assert message in text.split("|"), row
    elif kind == "maxlen":
        assert message.startswith(text) and len(message) <= 300, row
    assert row["seconds"] < 10, row
    assert row["next_ok"] is True, row


def test_bytes_mutation_stays_in_its_call(results: dict[str, Any]) -> None:
    row = results.get("bytes-mutation")
    assert row is not None, results["__stderr__"][-2000:]
    assert row["object"] == {"n": 1000000}


LOAD_CASES = {
    "top-level-loop": ("while (true) {}", "cannot load: time limit of 100 ms exceeded"),
    "top-level-throw-looping-toString": (
        "throw {toString: function () { while (true) {} }};",
        "cannot load: time limit of 100 ms exceeded",
    ),
    "top-level-throw-null": (
        "throw null;",
        "cannot load: codec threw null (QuickJS also throws null when out of memory)",
    ),
    "decodeUplink-not-a-function": (
        "var decodeUplink = 42;",
        "defines neither decodeUplink(input) nor Decoder(bytes, port)",
    ),
    "decodeUplink-getter-loops": (
        "Object.defineProperty(globalThis, 'decodeUplink', {get: function () { while (true) {} }});",
        "cannot load: time limit of 100 ms exceeded",
    ),
}

LOAD_CHILD = r"""
import json, sys
from decoders.js import JsCodec
from gateway_agent.errors import CodecError
good = "function decodeUplink(input) { return {data: {first: input.bytes[0]}}; }"
for case_id, source in json.loads(sys.stdin.read()):
    row = {"id": case_id}
    try:
        JsCodec("t/load", source, time_limit_s=0.1)
        row["message"] = "loaded"
    except CodecError as e:
        row["reason"], row["message"] = e.reason, str(e)
    row["next_ok"] = JsCodec("t/good", good)(1, b"\x05", {}).object == {"first": 5}
    print(json.dumps(row), flush=True)
"""


def test_hostile_load_is_bounded_and_honest() -> None:
    cases = [(cid, src) for cid, (src, _) in LOAD_CASES.items()]
    try:
        proc = subprocess.run(
            [sys.executable, "-c", LOAD_CHILD],
            input=json.dumps(cases),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=ROOT,
        )
        out = proc.stdout
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    rows = {row["id"]: row for row in map(json.loads, out.splitlines())}
    for cid, (_, message) in LOAD_CASES.items():
        assert cid in rows, f"{cid}: no result (hang or crash)"
        assert rows[cid]["reason"] == "codec_js_load", rows[cid]
        assert rows[cid]["message"] == message, rows[cid]
        assert rows[cid]["next_ok"] is True, rows[cid]


def test_decodeUplink_replaced_by_a_non_function_later() -> None:
    from decoders.js import JsCodec
    from gateway_agent.errors import CodecError

    js = JsCodec("t/swap", "function decodeUplink(i) { decodeUplink = 5; return {data: {a: 1}}; }")
    assert js(1, b"\x01", {}).object == {"a": 1}
    with pytest.raises(CodecError) as err:
        js(1, b"\x01", {})
    assert err.value.reason == "codec_js_throw"
    assert "not a function" in str(err.value)


def test_strict_mode_codec_loads() -> None:
    from decoders.js import JsCodec

    js = JsCodec(
        "t/strict",
        '"use strict";\nconst k = 2;\nlet helper = (b) => b[0] * k;\n'
        "function decodeUplink(input) { return {data: {v: helper(input.bytes)}}; }",
    )
    assert js.style == "uplink"
    assert js(1, b"\x04", {}).object == {"v": 8}


def _cli_decode(tmp_path: Path, source: str, payload_hex: str) -> subprocess.CompletedProcess[str]:
    codec = tmp_path / "codec.js"
    codec.write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "decode", "--codec", f"js:{codec}", "--fport", "1",
         payload_hex],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT,
    )  # fmt: skip


def test_cli_decode_returns_on_thrown_value_with_looping_toString(tmp_path: Path) -> None:
    """Issue #16 item 6 as reported: this hung `gateway-agent decode` for good."""
    src = "function decodeUplink(input) { throw {toString() { while (true) {} }}; }"
    try:
        proc = _cli_decode(tmp_path, src, "01")
    except subprocess.TimeoutExpired:
        pytest.fail(f"gateway-agent decode hung for {TIMEOUT_S} s")
    assert proc.returncode == 1
    assert "time limit of 100 ms exceeded" in proc.stderr


def test_cli_decode_throw_null_is_not_called_memory(tmp_path: Path) -> None:
    proc = _cli_decode(tmp_path, "function decodeUplink(input) { throw null; }", "01")
    assert proc.returncode == 1
    assert "codec threw null" in proc.stderr
