"""protobuf's JSON mapping of the `UplinkFrame`s the relay makes, without json_format's generic
walk (about 200 us a frame, the relay's bottleneck with `json = true`).

Same output as `json_format.MessageToJson` for the fields `frames.uplink_frame` sets (camelCase
names, bytes base64, enums by name, Timestamp/Duration strings, float32 shortest, defaults
left out; checked by tests/relay/test_relay_frames.py); anything else set goes the generic way.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
from chirpstack_api import gw
from google.protobuf import json_format
from google.protobuf.internal.type_checkers import ToShortestFloat

_CODE_RATE = {v: k for k, v in gw.CodeRate.items()}
_CRC = {v: k for k, v in gw.CRCStatus.items()}
# The UplinkFrame fields handled here; a frame with any other set takes the generic path.
_UP = {"phy_payload", "tx_info", "rx_info"}
_TX = {"frequency", "modulation"}
_LORA = {"bandwidth", "spreading_factor", "code_rate", "polarization_inversion"}
_RX = {
    "gateway_id",
    "uplink_id",
    "gw_time",
    "time_since_gps_epoch",
    "rssi",
    "snr",
    "channel",
    "rf_chain",
    "board",
    "antenna",
    "location",
    "context",
    "crc_status",
}
_LOC = {"latitude", "longitude", "altitude"}


def _names(m: Any) -> set[str]:
    return {f.name for f, _ in m.ListFields()}


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _tx(t: Any) -> dict[str, Any] | None:
    if not _names(t) <= _TX:
        return None
    d: dict[str, Any] = {}
    if t.frequency:
        d["frequency"] = t.frequency
    if t.HasField("modulation"):
        if t.modulation.WhichOneof("parameters") != "lora":
            return None
        lo = t.modulation.lora
        if not _names(lo) <= _LORA:
            return None
        ld: dict[str, Any] = {}
        if lo.bandwidth:
            ld["bandwidth"] = lo.bandwidth
        if lo.spreading_factor:
            ld["spreadingFactor"] = lo.spreading_factor
        if lo.code_rate:
            ld["codeRate"] = _CODE_RATE[lo.code_rate]
        if lo.polarization_inversion:
            ld["polarizationInversion"] = True
        d["modulation"] = {"lora": ld}
    return d


def _rx(r: Any) -> dict[str, Any] | None:
    names = _names(r)
    if not names <= _RX:
        return None
    d: dict[str, Any] = {}
    if r.gateway_id:
        d["gatewayId"] = r.gateway_id
    if r.uplink_id:
        d["uplinkId"] = r.uplink_id
    if "gw_time" in names:
        d["gwTime"] = r.gw_time.ToJsonString()
    if "time_since_gps_epoch" in names:
        d["timeSinceGpsEpoch"] = r.time_since_gps_epoch.ToJsonString()
    if r.rssi:
        d["rssi"] = r.rssi
    if r.snr:
        d["snr"] = ToShortestFloat(r.snr)
    for k, v in (
        ("channel", r.channel),
        ("rfChain", r.rf_chain),
        ("board", r.board),
        ("antenna", r.antenna),
    ):
        if v:
            d[k] = v
    if "location" in names:
        loc = r.location
        if not _names(loc) <= _LOC:
            return None
        d["location"] = {
            k: v
            for k, v in (
                ("latitude", loc.latitude),
                ("longitude", loc.longitude),
                ("altitude", loc.altitude),
            )
            if v
        }
    if r.context:
        d["context"] = _b64(r.context)
    if r.crc_status:
        d["crcStatus"] = _CRC[r.crc_status]
    return d


def uplink_json(up: gw.UplinkFrame) -> bytes:
    names = _names(up)
    d: dict[str, Any] | None = {}
    if names <= _UP:
        assert d is not None
        if up.phy_payload:
            d["phyPayload"] = _b64(up.phy_payload)
        if "tx_info" in names:
            t = _tx(up.tx_info)
            d = None if t is None else {**d, "txInfo": t}
        if d is not None and "rx_info" in names:
            r = _rx(up.rx_info)
            d = None if r is None else {**d, "rxInfo": r}
    else:
        d = None
    if d is None:
        text: str = json_format.MessageToJson(up, indent=None)
        return text.encode()
    return orjson.dumps(d)
