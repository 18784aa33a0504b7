"""Downlinks by object: a device's codec `encodeDownlink` turns `{"interval": 600}` into fPort and
bytes. One place for the CLI (daemon stopped), the control command and the web console."""

from __future__ import annotations

from typing import Any

from gateway_agent.errors import CodecError
from gateway_agent.rules.config import MAX_DOWNLINK


class ObjectError(ValueError):
    """The object could not become a downlink; the message says why (the codec's own errors
    included) and names the device."""


def encode_object(dev: Any, obj: Any, f_port: int | None = None) -> tuple[int, bytes]:
    """(fPort, payload) from `dev`'s codec; `f_port` when the codec names none. Raises
    ObjectError."""
    import decoders

    eui = dev.dev_eui.hex()
    if not isinstance(obj, dict):
        raise ObjectError(f"object: expected a JSON object, got {type(obj).__name__}")
    if not dev.codec:
        raise ObjectError(f"{eui} has no codec to encode an object with")
    if f_port is not None and not 1 <= f_port <= 223:
        raise ObjectError(f"f_port must be 1-223, got {f_port}")
    try:
        port, payload = decoders.encode_downlink(dev.codec, obj, dev.settings, f_port=f_port)
    except CodecError as e:
        errors = getattr(e, "errors", None)
        why = "; ".join(errors) if errors else str(e)
        raise ObjectError(f"{eui}: {dev.codec} encodeDownlink: {why}") from None
    if len(payload) > MAX_DOWNLINK:
        raise ObjectError(
            f"{eui}: encodeDownlink gave {len(payload)} bytes; at most {MAX_DOWNLINK} fit a frame"
        )
    return port, payload


def can_encode(codec_id: str | None) -> bool:
    """True when the codec is JavaScript with an `encodeDownlink` (a `ttn:` model: when the
    repository names an encoder; its absence shows as the error of the first try)."""
    if not codec_id:
        return False
    import decoders
    from decoders.js import JsCodec

    try:
        fn = decoders.get_codec(codec_id).fn
    except CodecError:
        return False
    if isinstance(fn, JsCodec) and "encodeDownlink" in fn.functions:
        return True
    return codec_id.startswith("ttn:")
