"""Sandboxed JavaScript codecs on QuickJS: TTN `decodeUplink` (+ `encodeDownlink`, `decodeDownlink`,
`normalizeUplink`), ChirpStack v4 (also as an ES module: `export` is dropped, `import` refused),
legacy TTN v2 `Decoder(bytes, port)`. Pure apart from reading the file once at load time.

QuickJS runtimes crash when touched from more than one thread, so every context lives and runs
on one dedicated worker thread; each codec has its own context, time and memory limits. The host
passes QuickJS only strings and gets only strings back (see _PRELUDE), so no codec code ever runs
outside those limits.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import quickjs

from decoders.jsresult import split, uplink_data
from decoders.types import Decoded
from gateway_agent.errors import CodecError

DEFAULT_TIME_LIMIT_S = 0.1
DEFAULT_MEMORY_LIMIT_BYTES = 16 * 1024 * 1024
GC_EVERY = 32
MAX_RESULT_CHARS = 1024 * 1024  # of JSON; a LoRaWAN payload decodes to a few hundred
MAX_MESSAGE_CHARS = 200

# Evaluated before the codec; returns the one function the host ever calls. The host only hands it
# strings and only gets a tagged string back, so no codec object (thrown value, result, getter,
# Proxy) is ever touched by the host: every conversion runs here, under the time and memory
# limits. It keeps its own copies of the builtins it uses, as a codec may replace the globals.
# The one value that still reaches the host is QuickJS's uncatchable "interrupted" error (the time
# limit), which the host turns into text with no limit in force: its prototype is frozen here
# with a fixed Symbol.toPrimitive so that conversion can never run codec code.
_PRELUDE = r"""
(function () {
  'use strict';
  var indirectEval = eval, parse = JSON.parse, stringify = JSON.stringify, toStr = String;
  var call = Function.prototype.call, isArray = Array.isArray;
  var objectToString = call.bind(Object.prototype.toString);
  var slice = call.bind(String.prototype.slice);
  var hasOwn = call.bind(Object.prototype.hasOwnProperty);
  var getProto = Object.getPrototypeOf, ownDescriptor = Object.getOwnPropertyDescriptor;
  var internalProto = InternalError.prototype;
  var MAX_RESULT = @MAX_RESULT@, MAX_MESSAGE = @MAX_MESSAGE@;
  // The optional entry points, in the order of the host's letters: e, d, n.
  var SUFFIX = '\n;[function () { return decodeUplink; }, function () { return Decoder; },' +
    ' function () { return encodeDownlink; }, function () { return decodeDownlink; },' +
    ' function () { return normalizeUplink; },' +
    ' typeof decodeUplink, typeof Decoder, typeof encodeDownlink, typeof decodeDownlink,' +
    ' typeof normalizeUplink]';
  var style = 'none', getUplink = null, getDecoder = null, getters = {}, optional = '';

  function ownMessage(e) {
    var d = ownDescriptor(e, 'message');
    return d !== undefined && hasOwn(d, 'value') && typeof d.value === 'string' ? d.value : '';
  }
  Object.defineProperty(internalProto, Symbol.toPrimitive, {
    value: function () { return 'InternalError: ' + ownMessage(this); }
  });
  Object.freeze(internalProto);

  function describe(e) {
    var t = typeof e;
    if (t === 'string') return e;
    if (t !== 'object' && t !== 'function') return toStr(e);
    try { var s = toStr(e); if (typeof s === 'string') return s; } catch (ignored) {}
    try { return objectToString(e); } catch (ignored) {}
    return '[object]';
  }
  // N: null (a `throw null`, or QuickJS out of memory), M: out of memory, S: stack overflow,
  // T: any other thrown value, as a JSON string; E (from load): a message of ours.
  function engineKind(e) {
    if (typeof e !== 'object' || getProto(e) !== internalProto) return '';
    var m = ownMessage(e);
    return m === 'out of memory' ? 'M' : (m === 'stack overflow' ? 'S' : '');
  }
  // Must not throw: whatever it lets escape, the host would convert with no limit in force.
  function failure(e) {
    if (e === null) return 'N';
    var kind = '';
    try { kind = engineKind(e); } catch (ignored) {}  // a Proxy's getPrototypeOf trap may throw
    if (kind) return kind;
    var text = describe(e);
    // As JSON: a lone surrogate in a thrown string would not survive the host's UTF-8 decoding.
    return 'T' + stringify(text.length > MAX_MESSAGE ? slice(text, 0, MAX_MESSAGE) + '...' : text);
  }
  function load(source) {
    try {
      var got = indirectEval(source + SUFFIX);
      if (!isArray(got) || got.length !== 10) return 'Edoes not end with a complete statement';
      getUplink = got[0]; getDecoder = got[1];
      getters = {enc: got[2], ddown: got[3], norm: got[4]};
      style = got[5] === 'function' ? 'uplink' : (got[6] === 'function' ? 'v2' : 'none');
      optional = (got[7] === 'function' ? 'e' : '') + (got[8] === 'function' ? 'd' : '') +
        (got[9] === 'function' ? 'n' : '');
    } catch (e) {
      return failure(e);
    }
    return 'L' + style + ':' + optional;
  }
  // R: the result as JSON, B: a result too large (its JSON length follows).
  // op 'up': the uplink decoder in its style; 'enc', 'ddown', 'norm': encodeDownlink,
  // decodeDownlink, normalizeUplink, each called with the parsed input object.
  function run(op, inputJson) {
    var text;
    try {
      var input = parse(inputJson), out;
      if (op === 'up') {
        out = style === 'uplink' ? getUplink()(input) : getDecoder()(input.bytes, input.fPort);
      } else {
        out = getters[op]()(input);
      }
      text = stringify(out === undefined ? null : out);
    } catch (e) {
      return failure(e);
    }
    if (typeof text !== 'string') return 'Rnull';
    return text.length > MAX_RESULT ? 'B' + text.length : 'R' + text;
  }
  return function (op, text) { return op === 'load' ? load(text) : run(op, text); };
})()
""".replace("@MAX_RESULT@", str(MAX_RESULT_CHARS)).replace("@MAX_MESSAGE@", str(MAX_MESSAGE_CHARS))

# Out of memory, QuickJS throws null when it cannot allocate the error object, so a caught null
# is a `throw null` only if the source can throw one at all: not with only `throw new X`,
# `throw {...}`, `throw [...]`, `throw "..."` or `throw 1`, and no eval or Function constructor.
_MAY_THROW_NULL = re.compile(
    r"\bthrow\b(?!\s*(?:new\b|[{\[\"'`\d]))|\beval\b|\bFunction\b|\bconstructor\b"
)

T = TypeVar("T")
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _run(fn: Callable[[], T]) -> T:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quickjs")
        executor = _executor
    return executor.submit(fn).result()


class _Failure(Exception):
    """A failed load or call: (reason, message, the context must be rebuilt)."""

    def __init__(self, reason: str, message: str, rebuild: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.rebuild = reason, message, rebuild


class JsCodec:
    """One JS codec file compiled into its own QuickJS context."""

    def __init__(
        self,
        codec_id: str,
        source: str,
        *,
        time_limit_s: float = DEFAULT_TIME_LIMIT_S,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
    ) -> None:
        if time_limit_s <= 0 or memory_limit_bytes <= 0:
            raise ValueError("JS limits must be positive")
        self.codec_id = codec_id
        self.source = module_to_script(source, codec_id)
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes
        self._may_throw_null = _MAY_THROW_NULL.search(self.source) is not None
        self._ctx: Any = None
        self._fn: Any = None
        self._calls = 0
        try:
            loaded = _run(self._compile)
        except _Failure as exc:
            raise CodecError(
                f"cannot load: {exc.message}", codec=codec_id, reason="codec_js_load"
            ) from None
        self.style, _, letters = loaded.partition(":")
        # Optional entry points the file defines: encodeDownlink, decodeDownlink, normalizeUplink.
        self.functions = frozenset(name for letter, name in _OPTIONAL.items() if letter in letters)
        if self.style == "none":
            raise CodecError(
                "defines neither decodeUplink(input) nor Decoder(bytes, port)",
                codec=codec_id,
                reason="codec_js_load",
            )

    def _compile(self) -> str:
        ctx = quickjs.Context()
        ctx.set_time_limit(self.time_limit_s)
        ctx.set_memory_limit(self.memory_limit_bytes)
        fn = self._invoke(ctx.eval, _PRELUDE)
        reply: str = self._invoke(fn, "load", self.source)
        if reply[:1] != "L":
            raise self._failure(reply)
        self._ctx, self._fn = ctx, fn
        return reply[1:]

    def _invoke(self, fn: Callable[..., Any], *args: str) -> Any:
        """Call into QuickJS; what escapes the prelude is a limit (or the prelude's own OOM)."""
        try:
            return fn(*args)
        except quickjs.JSException as exc:
            text = str(exc).strip()
            first = text.splitlines()[0] if text else ""
            if isinstance(exc, quickjs.StackOverflow) or "stack overflow" in first:
                raise _Failure("codec_js_stack", "stack overflow", True) from None
            if "interrupted" in first:
                ms = f"{self.time_limit_s * 1000:g}"
                raise _Failure(
                    "codec_js_timeout", f"time limit of {ms} ms exceeded", True
                ) from None
            if "out of memory" in first or first == "null":
                raise _Failure("codec_js_memory", "memory limit exceeded", True) from None
            raise _Failure(
                "codec_js_throw", f"QuickJS: {first[:MAX_MESSAGE_CHARS]}", True
            ) from None

    def _failure(self, reply: str) -> _Failure:
        tag, text = reply[:1], reply[1:]
        if tag == "S":
            return _Failure("codec_js_stack", "stack overflow", True)
        if tag == "M" or (tag == "N" and not self._may_throw_null):
            return _Failure("codec_js_memory", "memory limit exceeded", True)
        if tag == "N":
            return _Failure(
                "codec_js_throw",
                "codec threw null (QuickJS also throws null when out of memory)",
                True,
            )
        if tag == "E":
            return _Failure("codec_js_load", text, False)
        if tag == "B":
            return _Failure(
                "codec_js_result",
                f"result is larger than {MAX_RESULT_CHARS} characters of JSON ({text})",
                False,
            )
        lines = str(json.loads(text)).strip().splitlines()  # tag T
        return _Failure("codec_js_throw", f"codec threw {lines[0] if lines else ''}", False)

    def _call(self, op: str, input_json: str) -> str:
        try:
            if self._ctx is None:
                self._compile()
            reply = self._invoke(self._fn, op, input_json)
            if not isinstance(reply, str) or reply[:1] != "R":
                raise self._failure(reply if isinstance(reply, str) else 'T"no reply"')
            return reply[1:]
        except _Failure as exc:
            if exc.rebuild:  # the failed call may have left the heap full or globals half-set
                self._ctx = self._fn = None
            raise CodecError(exc.message, codec=self.codec_id, reason=exc.reason) from None
        finally:
            self._calls += 1
            if self._ctx is not None and self._calls % GC_EVERY == 0:
                self._ctx.gc()

    def call(self, op: str, arg: Mapping[str, Any]) -> Any:
        """Run one entry point (`up`, `enc`, `ddown`, `norm`) on a JSON-able input object;
        the raw result, parsed from JSON. Failures are CodecError."""
        if op != "up" and _OPS[op] not in self.functions:
            raise CodecError(
                f"defines no {_OPS[op]}(input)", codec=self.codec_id, reason="codec_js_missing"
            )
        text = json.dumps(arg, default=str)
        return json.loads(_run(lambda: self._call(op, text)))

    def run(self, f_port: int, payload: bytes, variables: Mapping[str, Any]) -> Any:
        """The uplink decoder's raw result, parsed from JSON."""
        return self.call(
            "up", {"bytes": list(payload), "fPort": f_port, "variables": dict(variables)}
        )

    def __call__(self, f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
        variables = settings.get("variables", {})
        if not isinstance(variables, Mapping):
            raise CodecError("settings.variables must be a table", reason="codec_settings")
        result = self.run(f_port, payload, variables)
        data, warnings = uplink_data(result, self.style == "uplink", self.codec_id)
        normalized: Any = None
        if "normalizeUplink" in self.functions:
            try:
                norm = self.call("norm", {"data": data})
                normalized, more = uplink_data(norm, True, self.codec_id, allow_list=True)
                warnings.extend(more)
            except CodecError as exc:  # the decoded data still stands; say why it is not normalized
                warnings.append(f"normalizeUplink: {exc}")
        return split(data, warnings, normalized)


def module_to_script(source: str, codec_id: str = "") -> str:
    """A ChirpStack v4 ES module as a script: `export` in front of a declaration is dropped,
    `export { a, b as c }` becomes plain bindings. Codecs cannot `import` anything here."""
    if "export" not in source and "import" not in source:
        return source
    if _IMPORT.search(source):
        raise CodecError(
            "cannot load: import statements are not supported (the codec must be one file)",
            codec=codec_id,
            reason="codec_js_load",
        )

    def names(m: re.Match[str]) -> str:
        out = []
        for part in m.group(2).split(","):
            local, _, exported = part.strip().partition(" as ")
            if exported.strip() and exported.strip() != local.strip():
                out.append(f"var {exported.strip()} = {local.strip()};")
        return m.group(1) + " ".join(out)

    source = _EXPORT_DECL.sub(r"\1", source)
    return _EXPORT_LIST.sub(names, source)


_OPTIONAL = {"e": "encodeDownlink", "d": "decodeDownlink", "n": "normalizeUplink"}
_OPS = {
    "up": "decodeUplink",
    "enc": "encodeDownlink",
    "ddown": "decodeDownlink",
    "norm": "normalizeUplink",
}
_EXPORT_DECL = re.compile(
    r"^([ \t]*)export[ \t]+(?:default[ \t]+)?(?=(?:async[ \t]+)?function\b|const\b|let\b|var\b|class\b)",
    re.M,
)
_EXPORT_LIST = re.compile(r"^([ \t]*)export[ \t]*\{([^}]*)\}[ \t]*;?", re.M)
_IMPORT = re.compile(r"^[ \t]*import[ \t]*(?:[\w*{][^;\n]*from[ \t]*)?[\"']", re.M)


def load_file(
    path: str | Path,
    codec_id: str | None = None,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
) -> JsCodec:
    """Read and compile a JS codec file (config time). Errors: CodecError(reason=codec_js_load)."""
    name = codec_id or f"js:{path}"
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CodecError(f"cannot read {path}: {exc}", codec=name, reason="codec_js_load") from exc
    return JsCodec(name, source, time_limit_s=time_limit_s, memory_limit_bytes=memory_limit_bytes)
