"""The `mqtt` output's `layout = "chirpstack"`: the agent's up / alert / event JSON as ChirpStack
v4 integration events, built with the `chirpstack-api` package's classes (extra `chirpstack`)
and written with protobuf's JSON mapping (camelCase), as ChirpStack's MQTT integration does.

- up -> `UplinkEvent` on `application/{application_id}/device/{dev_eui}/event/up`
- alert -> `LogEvent` (raised: WARNING, ERROR when critical; cleared: INFO) on `.../event/log`
- event `device_joined` -> `JoinEvent` on `.../event/join`; other gateway events have no
  ChirpStack event and make no message.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

from chirpstack_api import gw, integration
from google.protobuf import json_format

_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/gateway-agent")


def dedup_id(msg_id: str) -> str:
    """A stable UUID per agent message id: a re-delivered row keeps its deduplicationId."""
    return str(uuid.uuid5(_NS, msg_id))


def _tags(tags: Any) -> dict[str, str]:
    """The agent's tags (a list of strings) as ChirpStack's map: `k=v` -> {k: v}, else {t: ""}."""
    out: dict[str, str] = {}
    for t in tags if isinstance(tags, list) else []:
        k, _, v = str(t).partition("=")
        out[k] = v
    return out


class ChirpstackEvents:
    """Topic and JSON per row for one output's application id and name."""

    def __init__(self, application_id: str, application_name: str) -> None:
        self.application_id = application_id
        self.application_name = application_name

    def topic(self, dev_eui: str, event: str) -> str:
        return f"application/{self.application_id}/device/{dev_eui}/event/{event}"

    def _device(self, dev_eui: str, name: str = "", tags: Any = ()) -> integration.DeviceInfo:
        return integration.DeviceInfo(
            application_id=self.application_id,
            application_name=self.application_name,
            device_name=name,
            dev_eui=dev_eui,
            tags=_tags(tags),
        )

    def message(self, kind: str, body: dict[str, Any]) -> tuple[str, str] | None:
        """(topic, JSON text) for one row's body, or None when ChirpStack has no such event."""
        if kind == "up":
            return self._up(body)
        if kind == "alert":
            return self._log(body)
        if kind == "event" and body.get("event") == "device_joined" and body.get("devEui"):
            return self._join(body)
        return None

    def _up(self, b: dict[str, Any]) -> tuple[str, str]:
        eui = str(b["devEui"])
        info = b.get("deviceInfo") or {}
        ev = integration.UplinkEvent(
            deduplication_id=dedup_id(str(b["id"])),
            device_info=self._device(eui, str(info.get("deviceName", "")), info.get("tags")),
            dev_addr=str(b.get("devAddr", "")),
            f_cnt=int(b.get("fCnt", 0)) & 0xFFFFFFFF,
            f_port=int(b.get("fPort") or 0),
            confirmed=bool(b.get("confirmed", False)),
            data=base64.b64decode(b.get("data") or ""),
        )
        ev.time.FromJsonString(str(b["time"]))
        obj = {**(b.get("object") or {}), **(b.get("measurements") or {})}
        if obj:
            ev.object.update(obj)
        for rx in b.get("rxInfo") or []:
            ev.rx_info.append(_rx(rx))
        if b.get("txInfo"):
            json_format.ParseDict(b["txInfo"], ev.tx_info, ignore_unknown_fields=True)
        return self.topic(eui, "up"), _json(ev)

    def _log(self, b: dict[str, Any]) -> tuple[str, str]:
        eui = str(b["devEui"])
        raised = b.get("state") == "raised"
        level = integration.LogLevel.INFO
        if raised:
            critical = b.get("severity") == "critical"
            level = integration.LogLevel.ERROR if critical else integration.LogLevel.WARNING
        ctx = {
            k: str(b[src])
            for k, src in (
                ("alertId", "id"),
                ("rule", "rule"),
                ("state", "state"),
                ("severity", "severity"),
                ("measurement", "measurement"),
                ("value", "value"),
            )
            if b.get(src) is not None
        }
        ev = integration.LogEvent(
            device_info=self._device(eui),
            level=level,
            code=integration.LogCode.UNKNOWN,
            description=str(b.get("message") or f"{b.get('rule')} {b.get('state')}"),
            context=ctx,
        )
        ev.time.FromJsonString(str(b["time"]))
        return self.topic(eui, "log"), _json(ev)

    def _join(self, b: dict[str, Any]) -> tuple[str, str]:
        eui = str(b["devEui"])
        ev = integration.JoinEvent(
            deduplication_id=dedup_id(str(b.get("id", eui))),
            device_info=self._device(eui),
            dev_addr=str(b.get("devAddr", "")),
        )
        ev.time.FromJsonString(str(b["time"]))
        return self.topic(eui, "join"), _json(ev)


def _rx(rx: dict[str, Any]) -> gw.UplinkRxInfo:
    """The agent's rxInfo entry: ChirpStack's names, except `time` (ours: the reception's wall
    clock, ChirpStack's `nsTime`)."""
    d = {k: v for k, v in rx.items() if k not in ("time", "gwTime")}
    if rx.get("time"):
        d["nsTime"] = rx["time"]
    if isinstance(d.get("rssi"), float):
        d["rssi"] = round(d["rssi"])
    msg = gw.UplinkRxInfo()
    json_format.ParseDict(d, msg, ignore_unknown_fields=True)
    if isinstance(rx.get("gwTime"), str):  # the gateway's own string: kept when RFC 3339
        try:
            msg.gw_time.FromJsonString(rx["gwTime"])
        except ValueError:
            msg.ClearField("gw_time")
    return msg


def _json(ev: Any) -> str:
    return str(json_format.MessageToJson(ev, indent=None))


# What a malformed stored body raises on its way through `ChirpstackEvents.message`.
BAD_BODY: tuple[type[Exception], ...] = (ValueError, KeyError, TypeError, json_format.Error)
