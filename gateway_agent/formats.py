"""Upstream message structures (ChirpStack v4 field names where they apply) and their encodings.

The ingest path builds message dicts once, stores them in the outbox as JSON text; the forwarder
encodes them for the wire (JSON as stored, or CBOR single/batched). camelCase lives only here.
"""

from __future__ import annotations

import base64
import calendar
import binascii
import json
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import cbor2
import orjson

from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Alert, Reading

BATCH_TOPIC = "batch/up"


_SECONDS: dict[int, str] = {}  # whole second -> "YYYY-mm-ddTHH:MM:SS"


def iso_time(t: float) -> str:
    """RFC 3339 UTC with microseconds and Z, as ChirpStack writes it (hot path: cached seconds;
    receive and processing times straddle a second boundary, so one entry is not enough)."""
    sec = int(t // 1)
    head = _SECONDS.get(sec)
    if head is None:
        if len(_SECONDS) >= 256:
            _SECONDS.clear()
        head = _SECONDS[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{head}.{int((t - sec) * 1_000_000):06d}Z"


def _rx_json(rx: RxInfo) -> dict[str, Any]:
    d: dict[str, Any] = {"gatewayId": rx.gateway_id, "time": iso_time(rx.rx_wall)}
    if rx.rssi_dbm is not None:
        d["rssi"] = rx.rssi_dbm
    if rx.snr_db is not None:
        d["snr"] = rx.snr_db
    if rx.channel is not None:
        d["channel"] = rx.channel
    if rx.rf_chain is not None:
        d["rfChain"] = rx.rf_chain
    if rx.antenna is not None:
        d["antenna"] = rx.antenna
    if rx.board is not None:
        d["board"] = rx.board
    if rx.tmst is not None:
        d["context"] = _b64(rx.tmst.to_bytes(4, "big"), newline=False).decode()
    if rx.gw_time is not None:
        d["gwTime"] = rx.gw_time
    d["crcStatus"] = "CRC_OK"
    return d


_b64 = binascii.b2a_base64
_TX: dict[tuple[Any, ...], dict[str, Any]] = {}  # radio setting -> txInfo (shared, read-only)


def _tx_json(rx: RxInfo) -> dict[str, Any]:
    key = (rx.modulation, rx.freq_hz, rx.bitrate, rx.sf, rx.bw_khz, rx.code_rate)
    tx = _TX.get(key)
    if tx is None:
        if len(_TX) > 4096:
            _TX.clear()
        tx = _TX[key] = _make_tx(rx)
    return tx


def _make_tx(rx: RxInfo) -> dict[str, Any]:
    if rx.modulation == "FSK":
        return {"frequency": rx.freq_hz, "modulation": {"fsk": {"datarate": rx.bitrate}}}
    cr = (rx.code_rate or "4/5").replace("/", "_")
    return {
        "frequency": rx.freq_hz,
        "modulation": {
            "lora": {
                "bandwidth": (rx.bw_khz or 125) * 1000,
                "spreadingFactor": rx.sf,
                "codeRate": f"CR_{cr}",
            }
        },
    }


def uplink_message(
    r: Reading, gateway_id: str, device_name: str = "", tags: Sequence[str] = ()
) -> dict[str, Any]:
    """The `devices/{dev_eui}/up` object of DESIGN.md. Nested parts may be shared, cached
    objects: encode the result, do not mutate it."""
    eui = r.dev_eui.hex()
    msg: dict[str, Any] = {
        "id": r.id,
        "gatewayId": gateway_id,
        "time": iso_time(r.time),
        "timeValid": r.time_valid,
        "deviceInfo": {"devEui": eui, "deviceName": device_name, "tags": list(tags)},
        "devEui": eui,
        "devAddr": r.dev_addr.hex(),
        "fCnt": r.fcnt,
        "fPort": r.f_port,
        "confirmed": r.confirmed,
        "data": _b64(r.payload, newline=False).decode(),
        "object": dict(r.object),
        "measurements": dict(r.measurements),
        "rxInfo": [_rx_json(x) for x in r.rx],
        "txInfo": _tx_json(r.rx[0]) if r.rx else {},
    }
    if r.flags:
        msg["flags"] = dict(r.flags)
    if r.extras:
        msg["extras"] = dict(r.extras)
    if r.codec:
        msg["codec"] = r.codec
    if r.decode_error:
        msg["decodeError"] = r.decode_error
    return msg


def alert_message(a: Alert) -> dict[str, Any]:
    """The `devices/{dev_eui}/alert` object of DESIGN.md."""
    return {
        "id": a.id,
        "devEui": a.dev_eui.hex(),
        "rule": a.rule,
        "state": a.state,
        "severity": a.severity,
        "measurement": a.measurement,
        "value": a.value,
        "time": iso_time(a.time),
        "message": a.message,
    }


def event_message(event_id: str, kind: str, t: float, data: Mapping[str, Any]) -> dict[str, Any]:
    """An `events` object: data dropped, config reloaded, clock jump, database recovered, ..."""
    return {"id": event_id, "event": kind, "time": iso_time(t), **dict(data)}


def dumps(obj: Mapping[str, Any]) -> str:
    """Compact JSON text (UTF-8, no NaN/Infinity: a codec's non-finite number becomes null
    rather than costing the reading). orjson is ~5x the stdlib encoder on the ingest path; the
    stdlib takes what orjson refuses (integers beyond 64 bits, non-string keys)."""
    try:
        return _orjson_dumps(obj, default=_json_default).decode()
    except TypeError:
        return _ENCODER.encode(obj)


def _json_default(o: Any) -> Any:
    if type(o) is MappingProxyType:  # frozen codec output: encode as the dict it wraps
        return dict(o)
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


_orjson_dumps = orjson.dumps
_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)


# --------------------------------------------------------------------------- wire encodings


def _cbor_ready(obj: dict[str, Any]) -> dict[str, Any]:
    """CBOR carries binary as byte strings: `data` (base64 in JSON) and each `rxInfo.context`."""
    out = dict(obj)
    if isinstance(out.get("data"), str):
        try:
            out["data"] = base64.b64decode(out["data"])
        except ValueError:
            pass
    rx = out.get("rxInfo")
    if isinstance(rx, list):
        out["rxInfo"] = [_rx_ready(x) for x in rx]
    return out


def _rx_ready(rx: Any) -> Any:
    if isinstance(rx, dict) and isinstance(rx.get("context"), str):
        rx = dict(rx)
        try:
            rx["context"] = base64.b64decode(rx["context"])
        except ValueError:
            pass
    return rx


def encode_single(body_json: str, fmt: str) -> bytes:
    if fmt == "json":
        return body_json.encode()
    return bytes(cbor2.dumps(_cbor_ready(json.loads(body_json)), string_referencing=True))


def encode_batch(bodies: Sequence[str]) -> bytes:
    """A CBOR array of reading objects: one message for many readings (metered backhaul).

    String references (RFC 8949 registered tags 256/25, decoded transparently by cbor2 and other
    full decoders) send each repeated key and value once per message: half the bytes."""
    return bytes(cbor2.dumps([_cbor_ready(json.loads(b)) for b in bodies], string_referencing=True))


def decode_payload(payload: bytes, fmt: str) -> Any:
    """For consumers and tests: the inverse of encode_single / encode_batch."""
    if fmt == "json":
        return json.loads(payload)
    return cbor2.loads(payload)
