"""Payload codecs. Pure: `(f_port, payload) -> Decoded`, normalized names from FORMATS.md.

`decode()` is the one entry point the daemon and CLI call: every codec (built-in, plugin or
JavaScript) runs through its single wrapper, which turns any failure into `CodecError`.
`encode_downlink()` runs a JS codec's `encodeDownlink`; `verify_codecs()` its repository examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from decoders import cayenne, decentlab, dragino, elsys, milesight  # noqa: F401  (registration)
from decoders.derive import apply_derived, apply_field_map, check_settings
from decoders.js import DEFAULT_MEMORY_LIMIT_BYTES, DEFAULT_TIME_LIMIT_S, JsCodec, load_file
from decoders.jsresult import encoded, uplink_data
from decoders.normalize import COMMON_NAMES, TTN_NORMALIZED
from decoders.registry import CODECS, Codec, codec, load_plugins, plugin_errors
from decoders.ttnrepo import CodecSettings, TtnModel, load_codec_settings, resolve
from decoders.types import NORMALIZED_MEASUREMENTS, Decoded
from decoders.verify import check_example
from gateway_agent.errors import CodecError, ConfigError

__all__ = [
    "CODECS",
    "COMMON_NAMES",
    "NORMALIZED_MEASUREMENTS",
    "TTN_NORMALIZED",
    "Codec",
    "CodecError",
    "CodecSettings",
    "Decoded",
    "check_settings",
    "codec",
    "configure_codecs",
    "decode",
    "decode_downlink",
    "decode_result_json",
    "encode_downlink",
    "get_codec",
    "list_codecs",
    "load_codec_settings",
    "load_js_codec",
    "plugin_errors",
    "verify_codecs",
]

SAMPLES_DIR = Path(__file__).parent / "js"
_JS: dict[str, Codec] = {}
_ENCODERS: dict[str, JsCodec] = {}  # ttn: models whose encodeDownlink is a file of its own
_TTN_MODELS: dict[str, TtnModel] = {}
_settings = CodecSettings()


def configure_codecs(settings: CodecSettings) -> None:
    """Use the `[codecs]` section (config load and reload): where `ttn:` ids resolve."""
    global _settings
    if settings != _settings:  # ttn: ids loaded from the old copy are stale now
        for cache in (_JS, _ENCODERS, _TTN_MODELS):
            for cid in [c for c in cache if c.startswith("ttn:")]:
                del cache[cid]
    _settings = settings


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
    if codec_id.startswith("ttn:"):
        return _load_ttn(codec_id)
    load_plugins()
    found = CODECS.get(codec_id)
    if found is None:
        raise CodecError(f"unknown codec {codec_id!r}", codec=codec_id, reason="unknown_codec")
    return found


def _load_ttn(codec_id: str) -> Codec:
    root = _settings.ttn_repository
    if root is None:
        raise CodecError(
            f"{codec_id}: no TTN Device Repository configured ([codecs] ttn_repository)",
            codec=codec_id,
            reason="unknown_codec",
        )
    model = resolve(root, codec_id[4:])
    entry = load_js_codec(model.uplink_file, codec_id)
    if model.encoder_file is not None and model.encoder_file != model.uplink_file:
        _ENCODERS[codec_id] = load_file(model.encoder_file, codec_id)
    _TTN_MODELS[codec_id] = model
    return entry


def _js(codec_id: str, encoder: bool = False) -> JsCodec:
    fn = (encoder and _ENCODERS.get(codec_id)) or get_codec(codec_id).fn
    if not isinstance(fn, JsCodec):
        raise CodecError(
            f"{codec_id}: a built-in codec has no downlink encoder",
            codec=codec_id,
            reason="codec_js_missing",
        )
    return fn


def _variables(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    variables = (settings or {}).get("variables", {})
    if not isinstance(variables, Mapping):
        raise CodecError("settings.variables must be a table", reason="codec_settings")
    return dict(variables)


def encode_downlink(
    codec_id: str,
    obj: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    *,
    f_port: int | None = None,
) -> tuple[int, bytes]:
    """A downlink object -> (fPort, bytes) through the codec's `encodeDownlink` (TTN or
    ChirpStack input shape, both given). `f_port` is used when the codec names none. Its
    `errors` are a CodecError(reason="codec_js_errors") whose `.errors` lists them."""
    js = _js(codec_id, encoder=True)
    arg: dict[str, Any] = {"data": dict(obj), "variables": _variables(settings)}
    if f_port is not None:
        arg["fPort"] = f_port
    port, raw, _ = encoded(js.call("enc", arg), codec_id, f_port)
    return port, raw


def decode_downlink(
    codec_id: str, f_port: int, payload: bytes, settings: Mapping[str, Any] | None = None
) -> Any:
    """Downlink bytes -> the codec's object, through its `decodeDownlink`."""
    js = _js(codec_id)
    arg = {"bytes": list(payload), "fPort": f_port, "variables": _variables(settings)}
    data, _ = uplink_data(js.call("ddown", arg), True, codec_id)
    return data


def _raw_uplink(js: JsCodec, f_port: int, payload: bytes) -> tuple[Any, Any]:
    data, _ = uplink_data(js.run(f_port, payload, {}), js.style == "uplink", js.codec_id)
    if "normalizeUplink" not in js.functions:
        return data, None
    norm, _ = uplink_data(js.call("norm", {"data": data}), True, js.codec_id, allow_list=True)
    return data, norm


def verify_codecs(codec_ids: list[str]) -> list[dict[str, Any]]:
    """Run every example the TTN Device Repository ships for these `ttn:` codecs; one row per
    example: codec, kind, description, ok, problems. Other ids give one row saying they have no
    repository examples; a codec that cannot load, one row with its error."""
    rows: list[dict[str, Any]] = []
    for cid in dict.fromkeys(codec_ids):
        try:
            get_codec(cid)
        except CodecError as exc:
            rows.append({"codec": cid, "kind": "load", "description": "", "ok": False,
                         "problems": [str(exc)]})  # fmt: skip
            continue
        model = _TTN_MODELS.get(cid)
        if model is None:
            rows.append({"codec": cid, "kind": "none", "description": "no repository examples",
                         "ok": True, "problems": []})  # fmt: skip
            continue
        rows += _verify_model(cid, model)
    return rows


def _verify_model(cid: str, model: TtnModel) -> list[dict[str, Any]]:
    js = _js(cid)
    rows = []
    for ex in model.examples:
        problems = check_example(
            ex.kind, ex.f_port, ex.payload, ex.data, ex.errors, ex.normalized,
            decode=lambda port, raw: _raw_uplink(js, port, raw),
            encode=lambda obj, port: encode_downlink(cid, obj, f_port=port),
            decode_down=(lambda port, raw: decode_downlink(cid, port, raw))
            if "decodeDownlink" in js.functions else None,
        )  # fmt: skip
        rows.append({"codec": cid, "kind": ex.kind, "description": ex.description,
                     "ok": not problems, "problems": problems})  # fmt: skip
    return rows


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
    flags, warnings, the codec's own output (`object`, strings included) and history."""
    data = decoded.to_json()
    out: dict[str, Any] = {
        "codec": codec_id,
        "measurements": data["measurements"],
        "extras": data["extras"],
        "flags": data["flags"],
        "warnings": data["warnings"],
        "object": data["object"],
    }
    if decoded.history:
        out["history"] = data["history"]
    return out
