"""The `homeassistant` output: MQTT discovery, so every sensor appears in Home Assistant with
its unit.

- One RETAINED config per device and measurement, `{discovery_prefix}/sensor/ga_{dev_eui}/
  {measurement}/config`, sent the first time the measurement is seen on a connection (so a
  broker that lost its retained messages gets them again after a reconnect).
- One RETAINED state per reading, `{topic_prefix}/{gateway_id}/ha/{dev_eui}/state`: the
  reading's measurements as one JSON object; each sensor's `value_template` picks its own.
- Alerts: a `binary_sensor` (device_class problem) per device and rule, ON when raised, OFF when
  cleared, on `{topic_prefix}/{gateway_id}/ha/{dev_eui}/alert/{rule}` (retained).
- Availability: `{topic_prefix}/{gateway_id}/ha/availability`, `online` on connect, `offline` as
  the last will (retained).
- Removal: an event `device_removed` {devEui} publishes an empty retained config for each of
  the device's entities (Home Assistant deletes them) and clears its retained states. What was
  announced is remembered in `{state_dir}/ha-{output name}.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

import aiomqtt

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.outputs.mqtt import Messages, RowSink, body_text, client_id
from gateway_agent.outputs.mqttlink import MqttLink
from gateway_agent.outputs.worker import OutputDown, SinkContext
from gateway_agent.store import QueueRow

# The agent's measurement names (FORMATS.md section 2, decoders/normalize.py) -> Home Assistant
# (device_class, unit), pairs HA documents as valid: https://www.home-assistant.io/integrations/
# sensor/#device-class. Exact names first, then by unit suffix; a suffix with no HA class keeps
# its unit and no device_class.
EXACT: dict[str, tuple[str | None, str | None]] = {
    "co2_ppm": ("carbon_dioxide", "ppm"),
    "humidity_pct": ("humidity", "%"),
    "battery_pct": ("battery", "%"),
    "pressure_hpa": ("atmospheric_pressure", "hPa"),
    "tvoc_ppb": ("volatile_organic_compounds_parts", "ppb"),
    "tvoc_ugm3": ("volatile_organic_compounds", "µg/m³"),
    "pm1_ugm3": ("pm1", "µg/m³"),
    "pm2_5_ugm3": ("pm25", "µg/m³"),
    "pm10_ugm3": ("pm10", "µg/m³"),
    "fill_pct": (None, "%"),
}
SUFFIX: tuple[tuple[str, str | None, str | None], ...] = (
    ("_c", "temperature", "°C"),
    ("_v", "voltage", "V"),
    ("_mm", "distance", "mm"),
    ("_m", "distance", "m"),
    ("_hpa", "pressure", "hPa"),
    ("_bar", "pressure", "bar"),
    ("_lux", "illuminance", "lx"),
    ("_ppm", None, "ppm"),
    ("_ppb", None, "ppb"),
    ("_ugm3", None, "µg/m³"),
    ("_mgm3", None, "mg/m³"),
    ("_pct", None, "%"),
    ("_deg", None, "°"),
    ("_dps", None, "°/s"),
    ("_count", None, None),
)
NAMES = {
    "co2_ppm": "CO2",
    "tvoc_ppb": "TVOC",
    "tvoc_ugm3": "TVOC",
    "pm1_ugm3": "PM1",
    "pm2_5_ugm3": "PM2.5",
    "pm10_ugm3": "PM10",
    "battery_v": "Battery voltage",
    "battery_pct": "Battery",
}
_SAFE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def ha_class(measurement: str) -> tuple[str | None, str | None]:
    """(device_class, unit) for one of the agent's measurement names."""
    if measurement in EXACT:
        return EXACT[measurement]
    for suffix, cls, unit in SUFFIX:
        if measurement.endswith(suffix):
            if unit == "ppm" and measurement.startswith("co2"):
                return "carbon_dioxide", "ppm"
            if unit == "%" and measurement.startswith("humidity"):
                return "humidity", "%"
            return cls, unit
    return None, None


def ha_name(measurement: str) -> str:
    if measurement in NAMES:
        return NAMES[measurement]
    base = measurement
    for suffix, _, _ in SUFFIX:
        if base.endswith(suffix) and len(base) > len(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("_", " ").capitalize()


def _device(eui: str, name: str, codec: str) -> dict[str, Any]:
    maker, model = "LoRaWAN", codec or "LoRaWAN device"
    if codec.startswith("ttn:") and "/" in codec:
        maker, _, model = codec[4:].partition("/")
    return {
        "identifiers": [f"ga_{eui}"],
        "name": name or eui,
        "manufacturer": maker,
        "model": model,
        "serial_number": eui,
    }


class Discovery:
    """Topics and messages for one output; what was announced, on this connection and ever."""

    def __init__(self, cfg: OutputConfig, gateway_id: str, state_file: Path | None) -> None:
        assert cfg.mqtt is not None
        self.prefix = cfg.discovery_prefix
        self.base = f"{cfg.mqtt.topic_prefix}/{gateway_id}/ha"
        self.availability = f"{self.base}/availability"
        self.state_file = state_file
        self.session: set[tuple[str, str]] = set()  # (dev_eui, entity) announced since connect
        self.known: dict[str, dict[str, Any]] = self._load()  # dev_eui -> name, sensors, alerts

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.state_file is None:
            return {}
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self) -> None:
        if self.state_file is None:
            return
        tmp = self.state_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.known, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.state_file)
        except OSError:
            pass  # memory still knows; the file only serves removals after a restart

    def state_topic(self, eui: str) -> str:
        return f"{self.base}/{eui}/state"

    def alert_topic(self, eui: str, rule: str) -> str:
        return f"{self.base}/{eui}/alert/{rule}"

    def config_topic(self, component: str, eui: str, object_id: str) -> str:
        return f"{self.prefix}/{component}/ga_{eui}/{object_id}/config"

    def sensor_config(self, eui: str, m: str, dev: dict[str, Any]) -> dict[str, Any]:
        cls, unit = ha_class(m)
        cfg: dict[str, Any] = {
            "name": ha_name(m),
            "unique_id": f"ga_{eui}_{m}",
            "default_entity_id": f"sensor.ga_{eui}_{m}",
            "state_topic": self.state_topic(eui),
            "value_template": f"{{{{ value_json['{m}'] }}}}",
            "state_class": "total_increasing" if m.endswith("_total_count") else "measurement",
            "availability_topic": self.availability,
            "device": dev,
        }
        if cls:
            cfg["device_class"] = cls
        if unit:
            cfg["unit_of_measurement"] = unit
        return cfg

    def alert_config(self, eui: str, rule: str, dev: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": f"Alert {rule.replace('_', ' ')}",
            "unique_id": f"ga_{eui}_alert_{rule}",
            "default_entity_id": f"binary_sensor.ga_{eui}_alert_{rule}",
            "device_class": "problem",
            "state_topic": self.alert_topic(eui, rule),
            "payload_on": "ON",
            "payload_off": "OFF",
            "availability_topic": self.availability,
            "device": dev,
        }

    def _entry(self, eui: str) -> dict[str, Any]:
        return self.known.setdefault(eui, {"name": "", "codec": "", "sensors": [], "alerts": []})

    def up(self, body: dict[str, Any]) -> Messages:
        eui = str(body["devEui"])
        info = body.get("deviceInfo") or {}
        values = {k: v for k, v in (body.get("measurements") or {}).items() if _SAFE.match(k)}
        e = self._entry(eui)
        name, codec = str(info.get("deviceName") or ""), str(body.get("codec") or "")
        changed = (e["name"], e["codec"]) != (name, codec)
        e["name"], e["codec"] = name, codec
        dev = _device(eui, name, codec)
        out: Messages = []
        for m in values:
            if changed or (eui, m) not in self.session:
                conf = self.sensor_config(eui, m, dev)
                out.append((self.config_topic("sensor", eui, m), _dumps(conf), True))
                self.session.add((eui, m))
                if m not in e["sensors"]:
                    e["sensors"].append(m)
                    changed = True
        if changed:
            self._save()
        out.append((self.state_topic(eui), _dumps(values), True))
        return out

    def alert(self, body: dict[str, Any]) -> Messages:
        eui, rule = str(body["devEui"]), str(body["rule"])
        if not _SAFE.match(rule):
            rule = re.sub(r"[^A-Za-z0-9_]", "_", rule)[:64]
        e = self._entry(eui)
        out: Messages = []
        key = f"alert_{rule}"
        if (eui, key) not in self.session:
            dev = _device(eui, e["name"], e["codec"])
            conf = self.alert_config(eui, rule, dev)
            out.append((self.config_topic("binary_sensor", eui, key), _dumps(conf), True))
            self.session.add((eui, key))
            if rule not in e["alerts"]:
                e["alerts"].append(rule)
                self._save()
        state = b"ON" if body.get("state") == "raised" else b"OFF"
        out.append((self.alert_topic(eui, rule), state, True))
        return out

    def removed(self, eui: str) -> Messages:
        """Empty retained configs (HA deletes the entities) and states for a removed device."""
        e = self.known.pop(eui, None)
        if e is None:
            return []
        out: Messages = []
        for m in e["sensors"]:
            out.append((self.config_topic("sensor", eui, m), b"", True))
        for rule in e["alerts"]:
            out.append((self.config_topic("binary_sensor", eui, f"alert_{rule}"), b"", True))
            out.append((self.alert_topic(eui, rule), b"", True))
        out.append((self.state_topic(eui), b"", True))
        self.session = {k for k in self.session if k[0] != eui}
        self._save()
        return out

    def encode(self, r: QueueRow) -> Messages:
        body = json.loads(body_text(r))
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        if r.kind == "up":
            return self.up(body)
        if r.kind == "alert":
            return self.alert(body)
        if r.kind == "event" and body.get("event") == "device_removed" and body.get("devEui"):
            return self.removed(str(body["devEui"]).lower())
        return []


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class HomeAssistantSink(RowSink):
    """RowSink plus `online` on connect, `offline` as the last will, announcements per
    connection."""

    def __init__(self, link: MqttLink, discovery: Discovery) -> None:
        super().__init__(link, discovery.encode, (ValueError, KeyError, TypeError))
        self.discovery = discovery

    async def open(self) -> None:
        self.discovery.session.clear()
        await self.link.open()
        await self.link.publish_now(self.discovery.availability, b"online", retain=True)

    async def close(self) -> None:
        """`offline` before letting go (a clean disconnect sends no last will)."""
        if self.link.client is not None:
            with contextlib.suppress(OutputDown):
                await self.link.publish_now(self.discovery.availability, b"offline", retain=True)
        await self.link.close()


def make_sink(cfg: OutputConfig, ctx: SinkContext) -> HomeAssistantSink:
    assert cfg.mqtt is not None
    state = Path(ctx.state_dir) / f"ha-{cfg.name}.json" if ctx.state_dir is not None else None
    d = Discovery(cfg, ctx.gateway_id, state)
    will = aiomqtt.Will(d.availability, b"offline", qos=1, retain=True)
    return HomeAssistantSink(MqttLink(cfg.mqtt, client_id(cfg, ctx), cfg.timeout_s, will), d)
