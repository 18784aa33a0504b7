"""The `homeassistant` output (issue #20 must-show 3): every discovery message checked against
Home Assistant's documented schema for MQTT sensors and binary sensors (required keys, valid
device_class / unit pairs, unique ids, state topics where states really are published, value
templates that pick a value present in the state JSON), against a real mosquitto that checks
username, password and topic; alerts as binary sensors; a removed device's entities deleted with
empty retained configs; the real daemon end to end."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from decoders.normalize import UNITS
from gateway_agent.config.outputs import OutputConfig
from gateway_agent.outputs.homeassistant import Discovery, ha_class, make_sink
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING
from tests.durability_kit import fleet, frame, make_agent, send_all, wait_accepted
from tests.outputs.mqtt_kit import (
    Lane,
    Subscriber,
    alert_body,
    checking_broker,
    output,
    reading_body,
)

# Home Assistant's sensor device classes and the units it accepts for each, as documented at
# https://www.home-assistant.io/integrations/sensor/#device-class (the "following device classes
# are supported for sensors" list; the page's source is source/_integrations/sensor.markdown in
# home-assistant/home-assistant.io). Only the classes relevant to the agent's measurements.
HA_SENSOR_UNITS: dict[str, set[str]] = {
    "atmospheric_pressure": {"cbar", "bar", "hPa", "mmHg", "inHg", "kPa", "mbar", "Pa", "psi"},
    "battery": {"%"},
    "carbon_dioxide": {"ppm"},
    "carbon_monoxide": {"ppm"},
    "distance": {"km", "m", "cm", "mm", "mi", "nmi", "yd", "in"},
    "humidity": {"%"},
    "illuminance": {"lx"},
    "moisture": {"%"},
    "ozone": {"µg/m³"},
    "pm1": {"µg/m³"},
    "pm25": {"µg/m³"},
    "pm10": {"µg/m³"},
    "pressure": {"Pa", "kPa", "hPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"},
    "signal_strength": {"dB", "dBm"},
    "temperature": {"°C", "°F", "K"},
    "volatile_organic_compounds": {"µg/m³"},
    "volatile_organic_compounds_parts": {"ppm", "ppb"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
}
# https://www.home-assistant.io/integrations/sensor/#state-class-and-last-reset
HA_STATE_CLASSES = {"measurement", "total", "total_increasing"}
# https://www.home-assistant.io/integrations/binary_sensor/#device-class (problem: on = problem)
HA_BINARY_CLASSES = {"problem"}
# https://www.home-assistant.io/integrations/sensor.mqtt/ and binary_sensor.mqtt/: state_topic is
# required; discovery needs a unique_id for the entity to join a device; a device needs
# identifiers or connections.
REQUIRED = {"name", "unique_id", "state_topic", "device", "availability_topic"}
TEMPLATE = re.compile(r"^\{\{ value_json\['([A-Za-z0-9_]+)'\] \}\}$")
OBJECT_ID = re.compile(r"^[A-Za-z0-9_-]+$")

# FORMATS.md section 2: the normalized names and the extras the codecs emit.
MEASUREMENTS = sorted(
    set(UNITS)
    | {
        "fill_pct", "pm10_ugm3", "hcho_mgm3", "o3_ppm", "light_level", "illuminance_lux",
        "motion_count", "tvoc_raw", "tvoc_ugm3", "co2_lpf_ppm", "barometer_temperature_c",
        "co2_sensor_temperature_c", "capacitor_1_v", "co2_sensor_status", "temperature_2_c",
        "temperature_change_c", "external_temperature_c", "valid_samples_count",
        "pressure_bar", "analog_1_v", "pulse_count", "pulse_total_count", "accel_x",
    }
)  # fmt: skip


def check_sensor(topic: str, conf: dict[str, Any], prefix: str = "homeassistant") -> None:
    """One sensor discovery message against HA's documented schema."""
    m = re.match(rf"^{prefix}/(sensor|binary_sensor)/([^/]+)/([^/]+)/config$", topic)
    assert m, f"discovery topic {topic}"
    component, node_id, object_id = m.groups()
    assert OBJECT_ID.match(node_id) and OBJECT_ID.match(object_id), topic
    missing = REQUIRED - set(conf)
    assert not missing, f"{topic}: missing {missing}"
    dev = conf["device"]
    assert dev.get("identifiers") or dev.get("connections"), "device needs identifiers"
    assert dev.get("name")
    assert conf["default_entity_id"] == f"{component}.{conf['unique_id']}"
    if component == "sensor":
        cls, unit = conf.get("device_class"), conf.get("unit_of_measurement")
        if cls is not None:
            assert cls in HA_SENSOR_UNITS, f"{topic}: device_class {cls} not documented"
            assert unit in HA_SENSOR_UNITS[cls], f"{topic}: {unit!r} not valid for {cls}"
        assert conf["state_class"] in HA_STATE_CLASSES
        assert TEMPLATE.match(conf["value_template"]), conf["value_template"]
    else:
        assert conf["device_class"] in HA_BINARY_CLASSES
        assert {conf["payload_on"], conf["payload_off"]} == {"ON", "OFF"}


def test_every_measurement_name_maps_to_a_documented_class_and_unit() -> None:
    cfg = output("ha", "homeassistant", 1883)
    d = Discovery(cfg, "gw", None)
    dev = {"identifiers": ["ga_x"], "name": "x"}
    for m in MEASUREMENTS:
        conf = d.sensor_config("70b3d57ed0000001", m, dev)
        check_sensor(d.config_topic("sensor", "70b3d57ed0000001", m), conf)
    # the main names get the class a user expects, not just any valid one
    assert ha_class("co2_ppm") == ("carbon_dioxide", "ppm")
    assert ha_class("temperature_c") == ("temperature", "°C")
    assert ha_class("humidity_pct") == ("humidity", "%")
    assert ha_class("battery_v") == ("voltage", "V")
    assert ha_class("battery_pct") == ("battery", "%")
    assert ha_class("distance_mm") == ("distance", "mm")
    assert ha_class("level_mm") == ("distance", "mm")
    assert ha_class("pressure_hpa") == ("atmospheric_pressure", "hPa")
    assert ha_class("pm2_5_ugm3") == ("pm25", "µg/m³")
    assert ha_class("tvoc_ppb") == ("volatile_organic_compounds_parts", "ppb")
    assert ha_class("o3_ppm") == (None, "ppm"), "HA's ozone is µg/m³ only: no class"
    assert ha_class("light_level") == (None, None)


def _cfg(port: int, tmp: Path) -> OutputConfig:
    pw = tmp / "pw"
    pw.write_text("ha-pw\n")
    pw.chmod(0o600)
    return output(
        "ha",
        "homeassistant",
        port,
        mqtt={"topic_prefix": "ga", "username": "ha", "password_file": pw},
    )


def _acl() -> dict[str, list[str]]:
    return {"ha": ["homeassistant/#", "ga/test-gw/ha/#"]}


async def test_discovery_states_alerts_and_removal_against_the_schema(tmp_path: Path) -> None:
    broker = checking_broker(tmp_path / "b", {"ha": "ha-pw"}, _acl())
    sub = Subscriber(broker.port)
    lane = Lane(tmp_path, "ha")
    a, b = "70b3d57ed0000001", "70b3d57ed0000002"
    try:
        await lane.start(make_sink(_cfg(broker.port, tmp_path), lane.ctx()))
        rows = [
            (PRIO_READING, "up", a, "a1", reading_body(a, 1, {"co2_ppm": 612, "temperature_c":
             21.5, "humidity_pct": 41.0, "battery_v": 3.61}, "Class P7"), 1.0),
            (PRIO_READING, "up", a, "a2", reading_body(a, 2, {"co2_ppm": 650, "temperature_c":
             21.7, "humidity_pct": 42.0, "battery_v": 3.60}, "Class P7"), 2.0),
            (PRIO_READING, "up", b, "b1", reading_body(b, 1, {"distance_mm": 812.0,
             "fill_pct": 35.0, "battery_pct": 88.0}, "Bin 4"), 3.0),
        ]  # fmt: skip
        await lane.add(rows)
        await lane.until_empty()
        await lane.add([(PRIO_ALERT, "alert", a, "al1", alert_body(a, "co2_high", "raised"), 4.0)])
        await lane.until_empty()
        await lane.add(
            [(PRIO_ALERT, "alert", a, "al2", alert_body(a, "co2_high", "cleared", 1), 5.0)]
        )
        await lane.until_empty()
        assert sub.wait(lambda: len(sub.on(lambda t: "/alert/" in t)) == 2)

        configs = {t: json.loads(p) for t, p, _ in sub.on(lambda t: t.endswith("/config"))}
        assert len(configs) == 4 + 3 + 1, "one per device and measurement, one per alert rule"
        states: dict[str, list[dict[str, Any]]] = {}
        for t, p, _ in sub.on(lambda t: t.endswith("/state")):
            states.setdefault(t, []).append(json.loads(p))
        assert len(states[f"ga/test-gw/ha/{a}/state"]) == 2, "one state per reading"
        ids = [c["unique_id"] for c in configs.values()]
        assert len(ids) == len(set(ids)), "unique_id unique"
        for topic, conf in configs.items():
            check_sensor(topic, conf)
            if "/sensor/" in topic:
                published = states.get(conf["state_topic"])
                assert published, f"{conf['state_topic']}: no state published there"
                key = TEMPLATE.match(conf["value_template"]).group(1)  # type: ignore[union-attr]
                assert all(key in s for s in published), f"{key} not in the state JSON"
        co2 = configs[f"homeassistant/sensor/ga_{a}/co2_ppm/config"]
        assert (co2["device_class"], co2["unit_of_measurement"]) == ("carbon_dioxide", "ppm")
        assert co2["state_class"] == "measurement"
        assert co2["device"]["name"] == "Class P7"
        assert states[f"ga/test-gw/ha/{a}/state"][-1] == {
            "co2_ppm": 650, "temperature_c": 21.7, "humidity_pct": 42.0, "battery_v": 3.60,
        }  # fmt: skip
        alert_conf = configs[f"homeassistant/binary_sensor/ga_{a}/alert_co2_high/config"]
        assert alert_conf["state_topic"] == f"ga/test-gw/ha/{a}/alert/co2_high"
        assert [p for _, p, _ in sub.on(lambda t: "/alert/" in t)] == [b"ON", b"OFF"]
        assert sub.on(lambda t: t == "ga/test-gw/ha/availability")[0][1] == b"online"
        # each config once per connection, even with two readings of the same device
        assert len(sub.on(lambda t: t.endswith(f"ga_{a}/co2_ppm/config"))) == 1

        # Retained: a late subscriber (Home Assistant starting later) gets every config.
        late = Subscriber(broker.port, "homeassistant/#")
        try:
            assert late.wait(lambda: len(late.messages) == 8)
            assert all(r for _, _, r in late.messages), "configs are retained"
        finally:
            late.close()
        remembered = json.loads((tmp_path / "ha-ha.json").read_text())
        assert sorted(remembered[a]["sensors"]) == sorted(
            ["co2_ppm", "temperature_c", "humidity_pct", "battery_v"]
        )

        # Device b removed: empty retained configs delete its entities in HA.
        gone = json.dumps({"id": "e1", "event": "device_removed", "devEui": b, "time": "t"})
        await lane.add([(PRIO_EVENT, "event", None, "e1", gone, 6.0)])
        await lane.until_empty()
        assert sub.wait(lambda: any(p == b"" for _, p, _ in sub.on(lambda t: f"ga_{b}" in t)))
        late = Subscriber(broker.port, "homeassistant/#")
        try:
            assert late.wait(lambda: len(late.messages) == 5)
            await asyncio.sleep(0.3)
            left = {t for t, _, _ in late.messages}
            assert not any(f"ga_{b}" in t for t in left), "b's entities are gone"
            assert len(left) == 5, "a's 4 sensors and 1 alert remain"
        finally:
            late.close()
        assert b not in json.loads((tmp_path / "ha-ha.json").read_text())
    finally:
        await lane.close()
        sub.close()
        broker.stop()
    # A clean stop says offline (retained) for every entity's availability.
    assert sub.on(lambda t: t.endswith("availability"))[-1][1] == b"offline"


def test_daemon_end_to_end_homeassistant(tmp_path: Path) -> None:
    broker = checking_broker(tmp_path / "b", {"ha": "ha-pw"}, {"ha": ["homeassistant/#",
                             "ga/test-gw/ha/#"]})  # fmt: skip
    sub = Subscriber(broker.port)
    devs = fleet(2)
    pw = tmp_path / "pw"
    pw.write_text("ha-pw\n")
    pw.chmod(0o600)
    agent = make_agent(
        tmp_path / "a",
        None,
        devs,
        outputs=[
            {
                "name": "ha",
                "type": "homeassistant",
                "host": "127.0.0.1",
                "port": broker.port,
                "topic_prefix": "ga",
                "username": "ha",
                "password_file": str(pw),
                "backoff_initial_s": 0.1,
                "backoff_max_s": 0.5,
            }
        ],
    )
    try:
        agent.start()
        send_all(agent, [frame(d, f, 20.0 + f) for f in range(3) for d in devs])
        assert wait_accepted(agent, 6) == 6
        states = lambda: sub.on(lambda t: t.endswith("/state"))  # noqa: E731
        assert sub.wait(lambda: len(states()) == 6), agent.tail()
        configs = {t: json.loads(p) for t, p, _ in sub.on(lambda t: t.endswith("/config"))}
        for d in devs:
            conf = configs[f"homeassistant/sensor/ga_{d['eui']}/temperature_c/config"]
            check_sensor(f"homeassistant/sensor/ga_{d['eui']}/temperature_c/config", conf)
            assert (conf["device_class"], conf["unit_of_measurement"]) == ("temperature", "°C")
            assert conf["device"]["name"] == f"dev {d['eui'][-4:]}"
            vals = [json.loads(p)["temperature_c"] for t, p, _ in states() if d["eui"] in t]
            assert vals == [20.0, 21.0, 22.0]
        assert (tmp_path / "a" / "state" / "ha-ha.json").exists()
    finally:
        agent.stop()
        sub.close()
        broker.stop()
