"""`[[outputs]]`, `[relay]` and `[lorawan] mode`: the contract's keys, defaults and errors."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.config import load_config, preflight
from gateway_agent.errors import ConfigError
from tests.config.test_config import BASE


def doc(**extra: Any) -> dict[str, Any]:
    d = copy.deepcopy(BASE)
    d.update(copy.deepcopy(extra))
    return d


def test_outputs_of_every_type_load() -> None:
    cfg = load_config(
        doc(
            outputs=[
                {"name": "ha", "type": "homeassistant", "host": "10.0.0.5"},
                {"name": "cs", "type": "mqtt", "layout": "chirpstack", "application_id": "a1"},
                {
                    "name": "tsdb",
                    "type": "influxdb",
                    "url": "http://127.0.0.1:8086",
                    "database": "iot",
                },
                {
                    "name": "tsdb2",
                    "type": "influxdb",
                    "url": "https://eu-central-1.aws.cloud2.influxdata.com",
                    "org": "council",
                    "bucket": "sensors",
                    "token_file": "/etc/gateway-agent/influx.token",
                },
                {
                    "name": "cases",
                    "type": "webhook",
                    "url": "https://crm.example/hook",
                    "kinds": ["alert"],
                },
                {
                    "name": "az",
                    "type": "azure-iothub",
                    "hub": "council-hub",
                    "device_id": "gw17",
                    "device_key_file": "/k",
                },
                {
                    "name": "aws",
                    "type": "aws-iot",
                    "host": "abc-ats.iot.eu-west-2.amazonaws.com",
                    "cert_file": "/c",
                    "key_file": "/k",
                    "ca_file": "/ca",
                },
            ]
        )
    )
    by = {o.name: o for o in cfg.outputs}
    assert by["ha"].mqtt.host == "10.0.0.5" and by["ha"].discovery_prefix == "homeassistant"
    assert by["cs"].layout == "chirpstack" and by["cs"].application_id == "a1"
    assert by["tsdb"].database == "iot" and by["tsdb2"].bucket == "sensors"
    assert by["cases"].kinds == frozenset({"alert"})
    assert by["az"].mqtt.host == "council-hub.azure-devices.net" and by["az"].mqtt.port == 8883
    assert by["az"].mqtt.tls
    assert by["aws"].mqtt.port == 8883 and by["aws"].topic_template.count("{") == 3
    assert cfg.upstream.enabled, "[upstream] given: it stays on beside the outputs"


def test_outputs_without_upstream_turn_the_outbox_off() -> None:
    d = doc(outputs=[{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x"}])
    del d["upstream"]
    assert not load_config(d).upstream.enabled
    del d["outputs"]
    assert load_config(d).upstream.enabled, "no outputs: [upstream]'s defaults, as before"


@pytest.mark.parametrize(
    ("outputs", "where", "says"),
    [
        ([{"name": "x", "type": "kafka"}], "outputs[0].type", "expected one of"),
        ([{"name": "relay", "type": "webhook", "url": "http://a"}], "outputs[0].name", "relay"),
        (
            [{"name": "Bad Name", "type": "webhook", "url": "http://a"}],
            "outputs[0].name",
            "lowercase",
        ),
        ([{"name": "w", "type": "webhook", "url": "ftp://a"}], "outputs[0].url", "http://"),
        ([{"name": "w", "type": "webhook"}], "outputs[0].url", "is required"),
        (
            [{"name": "w", "type": "webhook", "url": "http://a", "bucket": "b"}],
            "outputs[0]",
            "bucket",
        ),
        ([{"name": "i", "type": "influxdb", "url": "http://a"}], "outputs[0].database", "either"),
        (
            [{"name": "i", "type": "influxdb", "url": "http://a", "bucket": "b"}],
            "outputs[0].org",
            "required",
        ),
        ([{"name": "m", "type": "mqtt", "port": 0}], "outputs[0].port", ""),
        ([{"name": "m", "type": "mqtt", "layout": "ttn"}], "outputs[0].layout", "expected one of"),
        ([{"name": "m", "type": "mqtt", "kinds": []}], "outputs[0].kinds", "at least one"),
        ([{"name": "m", "type": "mqtt", "kinds": ["readings"]}], "outputs[0].kinds[0]", ""),
        ([{"name": "a", "type": "azure-iothub", "hub": "h"}], "outputs[0].device_id", "required"),
        (
            [{"name": "a", "type": "azure-iothub", "hub": "h", "device_id": "d"}],
            "outputs[0].device_key_file",
            "required",
        ),
        ([{"name": "a", "type": "aws-iot"}], "outputs[0].host", "required"),
        ([{"name": "a", "type": "aws-iot", "host": "h"}], "outputs[0].cert_file", "mutual TLS"),
        (
            [{"name": "a", "type": "aws-iot", "host": "h", "topic_template": "x/{gateway}/#"}],
            "outputs[0].topic_template",
            "unknown placeholder {gateway}",
        ),
        (
            [{"name": "a", "type": "aws-iot", "host": "h", "topic_template": "x/{kind}/#"}],
            "outputs[0].topic_template",
            "wildcards",
        ),
        (
            [{"name": "a", "type": "mqtt"}, {"name": "a", "type": "mqtt"}],
            "outputs[1].name",
            "duplicate",
        ),
        ({"name": "a"}, "outputs", "array of tables"),
    ],
)
def test_output_errors_name_the_key(outputs: Any, where: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(doc(outputs=outputs))
    assert str(e.value).startswith(where), str(e.value)
    assert says in str(e.value)


def test_relay_and_mode() -> None:
    cfg = load_config(doc(relay={"kind": "chirpstack", "topic_prefix": "eu868"}))
    r = cfg.relay
    assert r is not None and r.topic_prefix == "eu868" and not r.json and r.mqtt is None
    assert cfg.lorawan.mode == "edge"
    cfg = load_config(
        doc(
            relay={
                "topic_prefix": "eu868",
                "json": True,
                "host": "ns.council.example",
                "port": 8883,
                "tls": True,
                "api_server": "ns.council.example:8080",
                "api_token_file": "/etc/gateway-agent/chirpstack.token",
            },
            lorawan={"mode": "passive"},
        )
    )
    assert cfg.relay.mqtt.host == "ns.council.example" and cfg.relay.mqtt.tls
    assert cfg.relay.json and cfg.relay.api_server == "ns.council.example:8080"
    assert cfg.lorawan.mode == "passive"
    assert load_config(doc()).relay is None
    for bad, where in (
        ({"kind": "ttn"}, "relay.kind"),
        ({"topic_prefix": "eu/#"}, "relay.topic_prefix"),
        ({"username": "u"}, "relay.username"),  # broker keys only with a broker of its own
        ({"api_server": "ns:8080"}, "relay.api_token_file"),
        ({"typo": 1}, "relay"),
    ):
        with pytest.raises(ConfigError) as e:
            load_config(doc(relay=bad))
        assert str(e.value).startswith(where), str(e.value)
    with pytest.raises(ConfigError, match="lorawan.mode"):
        load_config(doc(lorawan={"mode": "relay"}))


def test_secret_files_must_be_private(tmp_path: Path) -> None:
    token = tmp_path / "influx.token"
    token.write_text("t0ken\n")
    os.chmod(token, 0o644)
    d = doc(
        outputs=[
            {
                "name": "i",
                "type": "influxdb",
                "url": "http://a",
                "org": "o",
                "bucket": "b",
                "token_file": str(token),
            }
        ]
    )
    d["agent"]["state_dir"] = str(tmp_path / "state")
    cfg = load_config(d)
    with pytest.raises(ConfigError, match=r"outputs\[0\].*world-readable"):
        preflight(cfg)
    os.chmod(token, 0o600)
    preflight(cfg)
    api = tmp_path / "cs.token"
    api.write_text("x")
    os.chmod(api, 0o640 | 0o004)
    d2 = doc(relay={"api_server": "127.0.0.1:8080", "api_token_file": str(api)})
    d2["agent"]["state_dir"] = str(tmp_path / "state")
    with pytest.raises(ConfigError, match="relay"):
        preflight(load_config(d2))


def test_upstream_reads_the_shared_rows_only_when_json_beside_outputs() -> None:
    from gateway_agent.config.outputs import upstream_in_lane

    hook = [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/x"}]
    assert not upstream_in_lane(load_config(doc())), "no outputs: the outbox as before"
    assert upstream_in_lane(load_config(doc(outputs=hook)))
    cbor = doc(outputs=hook)
    cbor["upstream"]["format"] = "cbor"
    assert not upstream_in_lane(load_config(cbor)), "CBOR bodies differ: its own outbox"
    batched = doc(outputs=hook)
    batched["upstream"]["batch_max"] = 50
    assert not upstream_in_lane(load_config(batched))
    with pytest.raises(ConfigError, match="upstream"):
        load_config(doc(outputs=[{"name": "upstream", "type": "mqtt"}]))
