"""Upstream message structures (ChirpStack v4 field names where they apply), their topics and
their JSON. Pure: no IO.

The wire forms (CBOR, what the outbox stores per format) are in `gateway_agent.upstream.wire`.
camelCase lives here and there only.
"""

from __future__ import annotations

import binascii
import json
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import orjson

from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Alert, Reading

# Topics, below `{topic_prefix}/{gateway_id}/` (DESIGN.md "Upstream messages").
EVENTS_TOPIC = "events"
STATUS_TOPIC = "status"  # retained; the last will says "offline"
BATCH_TOPIC = "batch/up"  # CBOR batches of readings


def uplink_topic(dev_eui: str) -> str:
    """`devices/{dev_eui}/up`, dev_eui as lowercase hex."""
    return f"devices/{dev_eui}/up"


def alert_topic(dev_eui: str) -> str:
    """`devices/{dev_eui}/alert`, dev_eui as lowercase hex."""
    return f"devices/{dev_eui}/alert"


_SECONDS: dict[int, str] = {}  # whole second -> "YYYY-mm-ddTHH:MM:SS"


def iso_time(t: float) -> str:
    """RFC 3339 UTC with microseconds and Z, as ChirpStack writes it (hot path: cached seconds;
    receive and processing times straddle a second boundary, so one entry is not enough)."""
    if t == _LAST[0]:
        cached: str = _LAST[1]  # a reading's time is its first reception's: asked twice in a row
        return cached
    _LAST[1] = s = _iso_time(t)
    _LAST[0] = t
    return s


_LAST: list[Any] = [None, ""]


def _iso_time(t: float) -> str:
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


def tx_info(rx: RxInfo) -> dict[str, Any]:
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
    r: Reading,
    gateway_id: str,
    device_name: str = "",
    tags: Sequence[str] = (),
    device_class: str = "",
) -> dict[str, Any]:
    """The `devices/{dev_eui}/up` object of DESIGN.md. `txInfo` is a shared, cached object:
    encode the result, do not mutate it. `deviceInfo.class` (the device's class: co2,
    legionella, bin, gully, ...) when known: outputs group by it (InfluxDB's measurement)."""
    eui = r.dev_eui.hex()
    info: dict[str, Any] = {"devEui": eui, "deviceName": device_name, "tags": list(tags)}
    if device_class:
        info["class"] = device_class
    msg: dict[str, Any] = {
        "id": r.id,
        "gatewayId": gateway_id,
        "time": iso_time(r.time),
        "timeValid": r.time_valid,
        "deviceInfo": info,
        "devEui": eui,
        "devAddr": r.dev_addr.hex(),
        "fCnt": r.fcnt,
        "fPort": r.f_port,
        "confirmed": r.confirmed,
        "data": _b64(r.payload, newline=False).decode(),
        "object": dict(r.object),
        "measurements": dict(r.measurements),
        "rxInfo": [_rx_json(x) for x in r.rx],
        "txInfo": tx_info(r.rx[0]) if r.rx else {},
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


def status_message(
    state: str, gateway_id: str, t: float, figures: Mapping[str, Any]
) -> dict[str, Any]:
    """The retained `status` object: `online` with the daemon's figures, or `offline` (the last
    will). `time` is epoch seconds here, as it always was."""
    return {"state": state, "gatewayId": gateway_id, "time": t, **figures}


def dumps(obj: Mapping[str, Any]) -> str:
    """Compact JSON text (UTF-8, no NaN/Infinity: a codec's non-finite number becomes null
    rather than costing the reading). orjson is ~5x the stdlib encoder on the ingest path; the
    stdlib takes what orjson refuses (integers beyond 64 bits, non-string keys)."""
    try:
        return _orjson_dumps(obj, default=json_default).decode()
    except TypeError:
        return _ENCODER.encode(obj)


def json_default(o: Any) -> Any:
    if type(o) is MappingProxyType:  # frozen codec output: encode as the dict it wraps
        return dict(o)
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


_orjson_dumps = orjson.dumps
_ENCODER = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=json_default
)
