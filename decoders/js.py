"""Sandboxed JavaScript codecs on QuickJS: TTN `decodeUplink`, ChirpStack v4 `decodeUplink`,
legacy TTN v2 `Decoder(bytes, port)`. Pure apart from reading the file once at load time.

QuickJS runtimes crash when touched from more than one thread, so every context lives and runs
on one dedicated worker thread; each codec has its own context, time and memory limits.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import quickjs

from decoders.types import NORMALIZED_MEASUREMENTS, Decoded, is_number
from gateway_agent.errors import CodecError

DEFAULT_TIME_LIMIT_S = 0.1
DEFAULT_MEMORY_LIMIT_BYTES = 16 * 1024 * 1024
MAX_EXTRAS = 256
GC_EVERY = 32

# Called with one JSON string argument: untrusted bytes never become source text.
_SHIM = """
var __gatewayAgentStyle = typeof decodeUplink === 'function' ? 'uplink'
    : (typeof Decoder === 'function' ? 'v2' : 'none');
function __gatewayAgentCall(inputJson) {
    var input = JSON.parse(inputJson);
    var out = __gatewayAgentStyle === 'uplink' ? decodeUplink(input)
        : Decoder(input.bytes, input.fPort);
    var text = JSON.stringify(out === undefined ? null : out);
    return text === undefined ? 'null' : text;
}
"""

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


def _classify(exc: Exception) -> tuple[str, str, bool]:
    """(reason, short message, context must be rebuilt)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if isinstance(exc, quickjs.StackOverflow) or "stack overflow" in text:
        return "codec_js_stack", "stack overflow", True
    if "interrupted" in first:
        return "codec_js_timeout", "time limit exceeded", True
    # QuickJS reports "null" when it cannot even allocate the error object.
    if "out of memory" in text or first == "null":
        return "codec_js_memory", "memory limit exceeded", True
    return "codec_js_throw", f"threw {first[:160]}", False


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
        self.source = source
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes
        self._ctx: Any = None
        self._fn: Any = None
        self._calls = 0
        self.style: str = _run(self._compile)
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
        try:
            ctx.eval(self.source)
            ctx.eval(_SHIM)
        except Exception as exc:
            _, message, _ = _classify(exc)
            raise CodecError(
                f"cannot load: {message}", codec=self.codec_id, reason="codec_js_load"
            ) from exc
        self._ctx, self._fn = ctx, ctx.get("__gatewayAgentCall")
        return str(ctx.get("__gatewayAgentStyle"))

    def _call(self, input_json: str) -> Any:
        if self._ctx is None:
            self._compile()
        try:
            return self._fn(input_json)
        except Exception as exc:
            reason, message, rebuild = _classify(exc)
            if rebuild:  # the failed call may have left the heap full or globals half-set
                self._ctx = self._fn = None
            raise CodecError(message, codec=self.codec_id, reason=reason) from exc
        finally:
            self._calls += 1
            if self._ctx is not None and self._calls % GC_EVERY == 0:
                self._ctx.gc()

    def run(self, f_port: int, payload: bytes, variables: Mapping[str, Any]) -> Any:
        """The codec's raw result, parsed from JSON."""
        arg = json.dumps(
            {"bytes": list(payload), "fPort": f_port, "variables": dict(variables)}, default=str
        )
        text = _run(lambda: self._call(arg))
        if not isinstance(text, str):
            raise CodecError("result is not JSON", codec=self.codec_id, reason="codec_js_result")
        return json.loads(text)

    def __call__(self, f_port: int, payload: bytes, settings: Mapping[str, Any]) -> Decoded:
        variables = settings.get("variables", {})
        if not isinstance(variables, Mapping):
            raise CodecError("settings.variables must be a table", reason="codec_settings")
        result = self.run(f_port, payload, variables)
        if not isinstance(result, dict):
            raise CodecError(
                f"returned {type(result).__name__}, expected an object",
                codec=self.codec_id,
                reason="codec_js_result",
            )
        warnings: list[str] = []
        if self.style == "uplink":
            errors = result.get("errors")
            if errors:
                text = "; ".join(map(str, errors)) if isinstance(errors, list) else str(errors)
                raise CodecError(
                    f"codec errors: {text[:200]}", codec=self.codec_id, reason="codec_js_errors"
                )
            raw_warnings = result.get("warnings") or []
            warnings = [str(w) for w in raw_warnings] if isinstance(raw_warnings, list) else []
            data = result.get("data")
            if not isinstance(data, dict):
                raise CodecError(
                    "result has no data object", codec=self.codec_id, reason="codec_js_result"
                )
        else:
            data = result
        return split(data, warnings)


def split(data: dict[str, Any], warnings: list[str]) -> Decoded:
    """Top-level normalized names become measurements; other numeric leaves extras, booleans
    flags (keyed by the path joined with `_`); everything stays in `object`."""
    measurements: dict[str, float] = {}
    extras: dict[str, Any] = {}
    flags: dict[str, bool | str] = {}

    def walk(value: Any, path: list[str]) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, [*path, str(k)])
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, [*path, str(i)])
        elif len(extras) + len(flags) >= MAX_EXTRAS:
            return
        elif isinstance(value, bool):
            flags["_".join(path)] = value
        elif is_number(value):
            if len(path) == 1 and path[0] in NORMALIZED_MEASUREMENTS:
                measurements[path[0]] = value
            else:
                extras["_".join(path)] = value

    walk(data, [])
    return Decoded(measurements, extras, flags, tuple(warnings), data)


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
