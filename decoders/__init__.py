"""Payload codecs. Pure: `(f_port, payload) -> Decoded`, normalized names from FORMATS.md.

`decode()` is the one entry point the daemon and CLI call: every codec (built-in, plugin or
JavaScript) runs through its single wrapper, which turns any failure into `CodecError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from decoders import cayenne, decentlab, dragino, elsys, milesight  # noqa: F401  (registration)
from decoders.derive import apply_derived, apply_field_map, check_settings
from decoders.js import DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_TIME_LIMIT_S, load_file
from decoders.registry import CODECS, Codec, codec, load_plugins, plugin_errors
from decoders.types import NORMALIZED_MEASUREMENTS, Decoded
from gateway_agent.errors import CodecError, ConfigError

__all__ = [
    "CODECS",
    "NORMALIZED_MEASUREMENTS",
    "Codec",
    "CodecError",
    "Decoded",
    "check_settings",
    "codec",
    "decode",
    "decode_result_json",
    "get_codec",
    "list_codecs",
    "load_js_codec",
    "plugin_errors",
]

SAMPLES_DIR = Path(__file__).parent / "js"
_JS: dict[str, Codec] = {}
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def load_js_codec(
    path: str | Path,
    codec_id: str | None = None,
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
) -> Codec:
    """Compile a JS codec file now (config time) and cache it under `codec_id` (default
    `js:PATH`). Raises CodecError(reason="codec_js_load") when it cannot be loaded."""
    cid = codec_id or f"js:{path}"
    js = load_file(path, cid, time_limit_s=time_limit_s, memory_limit_bytes=memory_limit_bytes)
    entry = Codec(cid, js, vendor="", models=(Path(path).name,), source="js")
    _JS[cid] = entry
    return entry


def _resolve_js_path(spec: str) -> Path:
    # "js:NAME" with a bare name means one of the shipped samples in decoders/js/.
    if "/" not in spec and "\\" not in spec and not spec.endswith(".js"):
        return SAMPLES_DIR / f"{spec}.js"
    return Path(spec)


def get_codec(codec_id: str) -> Codec:
    """A registered codec, or `js:PATH` / `js:SAMPLE` (loaded once and cached).
    Raises CodecError(reason="unknown_codec") for an id nobody registered."""
    found = CODECS.get(codec_id) or _JS.get(codec_id)
    if found is not None:
        return found
    if codec_id.startswith("js:"):
        return load_js_codec(_resolve_js_path(codec_id[3:]), codec_id)
    load_plugins()
    found = CODECS.get(codec_id)
    if found is None:
        raise CodecError(f"unknown codec {codec_id!r}", codec=codec_id, reason="unknown_codec")
    return found


def list_codecs() -> list[dict[str, Any]]:
    """Rows for `gateway-agent codecs list`: id, vendor, models, class, f_ports, source, alias_of."""
    load_plugins()
    rows = [c.describe() for c in CODECS.values()] + [c.describe() for c in _JS.values()]
    return sorted(rows, key=lambda row: str(row["id"]))


_CHECKED: dict[int, Mapping[str, Any]] = {}  # settings objects already validated


def decode(
    codec_id: str, f_port: int, payload: bytes, settings: Mapping[str, Any] | None = None
) -> Decoded:
    """Decode one payload, then apply the device's `field_map` and derived measurements.
    Any failure (bad frame, codec bug, JS throw/timeout/OOM, bad settings) is a CodecError."""
    settings = _EMPTY if settings is None else settings
    try:
        entry = CODECS.get(codec_id) or get_codec(codec_id)
        if type(f_port) is not int or not 0 <= f_port <= 255:
            raise CodecError(f"fPort {f_port!r} out of range", reason="codec_fport")
        if type(payload) is not bytes and not isinstance(payload, bytes | bytearray):
            raise CodecError("payload must be bytes", reason="codec_payload")
        if _CHECKED.get(id(settings)) is not settings:
            check_settings(settings)
            if len(_CHECKED) > 100_000:
                _CHECKED.clear()
            _CHECKED[id(settings)] = settings  # keeps it alive, so the id stays its own
        result = entry.fn(f_port, payload if type(payload) is bytes else bytes(payload), settings)
        if not isinstance(result, Decoded):
            raise CodecError(
                f"codec returned {type(result).__name__}, not Decoded", reason="codec_result"
            )
        return apply_derived(apply_field_map(result, settings), settings)
    except CodecError as exc:
        if exc.codec is None:
            exc.codec = codec_id
        raise
    except ConfigError as exc:
        raise CodecError(
            f"{codec_id}: bad settings: {exc}", codec=codec_id, reason="codec_settings"
        ) from exc
    except Exception as exc:  # a codec bug: still only this frame's problem (invariant 5)
        raise CodecError(
            f"{codec_id}: {type(exc).__name__}: {str(exc)[:160]}",
            codec=codec_id,
            reason="codec_internal",
        ) from exc


def decode_result_json(codec_id: str, decoded: Decoded) -> dict[str, Any]:
    """The `gateway-agent decode --json` object (DESIGN.md): codec, measurements, extras, then
    flags, warnings and history."""
    data = decoded.to_json()
    out: dict[str, Any] = {
        "codec": codec_id,
        "measurements": data["measurements"],
        "extras": data["extras"],
        "flags": data["flags"],
        "warnings": data["warnings"],
    }
    if decoded.history:
        out["history"] = data["history"]
    return out
