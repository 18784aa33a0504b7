"""Run the example frames a codec's repository ships and report each mismatch (`gateway-agent
codecs verify`). Pure: examples and codecs in, result rows out."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gateway_agent.errors import CodecError

REL_TOL = 1e-9


def differences(want: Any, got: Any, path: str = "data") -> list[str]:
    """Where `got` differs from `want` (numbers to a relative 1e-9), as `path: want != got`."""
    if isinstance(want, Mapping) and isinstance(got, Mapping):
        out: list[str] = []
        for k in want:
            if k not in got:
                out.append(f"{path}.{k}: missing")
            else:
                out += differences(want[k], got[k], f"{path}.{k}")
        out += [f"{path}.{k}: not expected" for k in got if k not in want]
        return out
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return [f"{path}: {len(want)} items expected, got {len(got)}"]
        return [
            d
            for i, (w, g) in enumerate(zip(want, got, strict=True))
            for d in differences(w, g, f"{path}.{i}")
        ]
    num = (int, float)
    if isinstance(want, num) and isinstance(got, num) and not isinstance(want, bool):
        if not isinstance(got, bool) and math.isclose(want, got, rel_tol=REL_TOL, abs_tol=1e-12):
            return []
    elif want == got and type(want) is type(got):
        return []
    return [f"{path}: expected {want!r}, got {got!r}"]


def check_example(
    kind: str,
    f_port: int | None,
    payload: bytes | None,
    data: Any,
    errors: Iterable[str],
    normalized: Any,
    *,
    decode: Callable[[int, bytes], tuple[Any, Any]] | None,
    encode: Callable[[Any, int | None], tuple[int, bytes]] | None,
    decode_down: Callable[[int, bytes], Any] | None,
) -> list[str]:
    """Problems with one example; [] when the codec reproduces it. `decode` returns (data,
    normalized), `encode` (fPort, bytes)."""
    want_errors = list(errors)
    try:
        if kind == "uplink" or kind == "downlink-decode":
            fn = decode if kind == "uplink" else decode_down
            if fn is None:
                return [f"the codec has no {'decoder' if kind == 'uplink' else 'decodeDownlink'}"]
            if payload is None or f_port is None:
                return ["the example has no input bytes / fPort"]
            if kind == "uplink":
                got, got_norm = fn(f_port, payload)
            else:
                got, got_norm = fn(f_port, payload), None
            if want_errors:
                return [f"expected errors {want_errors}, the codec decoded it"]
            problems = differences(data, got) if data is not None else []
            if normalized is not None:
                if isinstance(normalized, list) and isinstance(got_norm, Mapping):
                    got_norm = [got_norm]  # normalizeUplink may return one measurement bare
                problems += differences(normalized, got_norm, "normalized")
            return problems
        if encode is None:
            return ["the codec has no encodeDownlink"]
        port, raw = encode(data, f_port)
        if want_errors:
            return [f"expected errors {want_errors}, the codec encoded it"]
        problems = []
        if payload is not None and raw != payload:
            problems.append(f"bytes: expected {payload.hex()}, got {raw.hex()}")
        if f_port is not None and port != f_port:
            problems.append(f"fPort: expected {f_port}, got {port}")
        return problems
    except CodecError as exc:
        got_errors = list(getattr(exc, "errors", []) or [])
        if want_errors and (not got_errors or got_errors == want_errors):
            return []
        if want_errors:
            return [f"errors: expected {want_errors}, got {got_errors}"]
        return [f"codec failed: {exc}"]
