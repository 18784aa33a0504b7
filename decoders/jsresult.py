"""What a JS codec's result means: TTN `{data, warnings, errors}` checked, then the data split
into measurements (normalized names, `normalizeUplink`, common names), extras and flags. Pure."""

from __future__ import annotations

import math
from typing import Any

from decoders.normalize import common_names, ttn_normalized
from decoders.types import NORMALIZED_MEASUREMENTS, Decoded, is_number
from gateway_agent.errors import CodecError

MAX_EXTRAS = 256


def messages(value: Any) -> list[str]:
    """A codec's `errors` / `warnings` entry as a list of strings."""
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def uplink_data(
    result: Any, ttn_style: bool, codec_id: str, *, allow_list: bool = False
) -> tuple[Any, list[str]]:
    """(data, warnings) of one result; a non-empty `errors` is a CodecError carrying them."""
    if not isinstance(result, dict):
        raise CodecError(
            f"returned {type(result).__name__}, expected an object",
            codec=codec_id,
            reason="codec_js_result",
        )
    if not ttn_style:
        return result, []
    errors = messages(result.get("errors"))
    if errors:
        exc = CodecError(
            f"codec errors: {'; '.join(errors)[:200]}", codec=codec_id, reason="codec_js_errors"
        )
        exc.errors = errors  # type: ignore[attr-defined]
        raise exc
    data = result.get("data")
    if not isinstance(data, dict) and not (allow_list and isinstance(data, list)):
        raise CodecError("result has no data object", codec=codec_id, reason="codec_js_result")
    return data, messages(result.get("warnings"))


def split(data: dict[str, Any], warnings: list[str], normalized: Any = None) -> Decoded:
    """Top-level normalized names, common codec names (with units) and a `normalizeUplink`
    result become measurements; other numeric leaves extras, booleans flags (keyed by the path
    joined with `_`); everything stays in `object`, strings included."""
    measurements: dict[str, float] = {}
    extras: dict[str, Any] = {}
    flags: dict[str, bool | str] = {}
    common, used = common_names(data)
    skip = set(used)

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

    for key, value in data.items():
        if key not in skip:
            walk(value, [str(key)])
    for source in (common, ttn_normalized(normalized)):  # later wins: the codec's own schema
        for name, value in source.items():
            if math.isfinite(value):
                measurements[name] = value
    return Decoded(measurements, extras, flags, tuple(warnings), data)


def encoded(result: Any, codec_id: str, f_port: int | None) -> tuple[int, bytes, list[str]]:
    """(fPort, bytes, warnings) of an `encodeDownlink` result (TTN or ChirpStack shape); the
    result's fPort wins over `f_port`. Its `errors` are a CodecError carrying them."""
    if not isinstance(result, dict):
        raise CodecError(
            f"encodeDownlink returned {type(result).__name__}, expected an object",
            codec=codec_id,
            reason="codec_js_result",
        )
    errors = messages(result.get("errors"))
    if errors:
        exc = CodecError(
            f"codec errors: {'; '.join(errors)[:200]}", codec=codec_id, reason="codec_js_errors"
        )
        exc.errors = errors  # type: ignore[attr-defined]
        raise exc
    raw = result.get("bytes")
    if not isinstance(raw, list) or not all(type(b) is int and 0 <= b <= 255 for b in raw):
        raise CodecError(
            "encodeDownlink: bytes must be a list of integers 0..255",
            codec=codec_id,
            reason="codec_js_result",
        )
    port = result.get("fPort", f_port)
    if type(port) is float and port.is_integer():
        port = int(port)
    if type(port) is not int or not 1 <= port <= 223:
        raise CodecError(
            f"encodeDownlink: fPort must be 1..223, got {port!r}",
            codec=codec_id,
            reason="codec_js_result",
        )
    return port, bytes(raw), messages(result.get("warnings"))
