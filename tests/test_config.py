"""Config loading: frozen tree, key-path errors, devices file, permissions."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.config import load_config, load_devices, read_config, read_devices
from gateway_agent.errors import ConfigError

BASE: dict[str, Any] = {
    "agent": {"gateway_id": "fife-ps-017", "state_dir": "/tmp/x"},
    "sources": [{"type": "gwmp", "listen": "127.0.0.1:1700"}],
    "upstream": {
        "host": "127.0.0.1",
        "port": 1883,
        "topic_prefix": "gateway-agent",
        "format": "json",
    },
}


def with_(path: str, value: Any) -> dict[str, Any]:
    import copy

    doc = copy.deepcopy(BASE)
    cur: Any = doc
    parts = path.split(".")
    for p in parts[:-1]:
        cur = cur[int(p)] if p.isdigit() else cur.setdefault(p, {})
    cur[parts[-1]] = value
    return doc


def test_design_example_loads_frozen() -> None:
    cfg = load_config(BASE)
    assert cfg.agent.gateway_id == "fife-ps-017"
    assert cfg.sources[0].listen == (("127.0.0.1", 1700),)
    assert cfg.upstream.format == "json"
    assert (cfg.lorawan.adr, cfg.lorawan.adr_margin_db) == (True, 10.0)
    assert load_config(with_("lorawan.adr", False)).lorawan.adr is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.agent.gateway_id = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("upstream.port", "abc", 'upstream.port: expected an integer 1-65535, got "abc"'),
        ("upstream.port", 70000, "upstream.port: expected an integer 1-65535, got an integer"),
        ("upstream.format", "xml", "upstream.format: expected one of json | cbor"),
        ("sources.0.listen", "1700", 'sources[0].listen: expected "host:port"'),
        ("sources.0.type", "lora", "sources[0].type: expected one of gwmp | serial"),
        ("agent.gateway_id", "a/b", "agent.gateway_id: must not contain"),
        ("upstream.colour", "red", "upstream.colour: unknown key"),
        ("store.synchronous", "OFF", "store.synchronous: expected one of FULL | NORMAL"),
        ("lorawan.adr", "yes", "lorawan.adr: expected true or false"),
        ("lorawan.adr_margin_db", 45, "lorawan.adr_margin_db: expected a number 0-30"),
    ],
)
def test_errors_name_the_key_path(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(with_(path, value))
    assert str(ei.value).startswith(message)


def test_serial_source_defaults() -> None:
    cfg = load_config(
        with_("sources", [{"type": "serial", "port": "/dev/ttyUSB0", "format": "rn2483"}])
    )
    s = cfg.sources[0]
    assert s.baudrate == 57600 and s.gateway_id == "serial:/dev/ttyUSB0"


def test_missing_agent_table() -> None:
    with pytest.raises(ConfigError, match="^agent: is required"):
        load_config({"upstream": {}})


def test_devices_file_abp_otaa_and_errors(tmp_path: Path) -> None:
    devs = load_devices(
        {
            "device": [
                {
                    "dev_eui": "70B3-D57E-D000-0001",
                    "class": "co2",
                    "codec": "cayenne-lpp",
                    "dev_addr": "26011bda",
                    "nwk_s_key": "00" * 16,
                    "app_s_key": "11" * 16,
                },
                {
                    "dev_eui": "0004a30b001c0530",
                    "join_eui": "70b3d57ed0001234",
                    "app_key": "22" * 16,
                },
            ]
        }
    )
    assert devs[0].dev_eui.hex() == "70b3d57ed0000001" and devs[0].activation == "abp"
    assert devs[1].activation == "otaa"
    assert "00000000" not in repr(devs[0])  # keys never in reprs
    with pytest.raises(ConfigError, match=r"^device\[0\]\.app_s_key: is required"):
        load_devices(
            {
                "device": [
                    {"dev_eui": "70b3d57ed0000001", "dev_addr": "26011bda", "nwk_s_key": "00" * 16}
                ]
            }
        )
    with pytest.raises(ConfigError, match=r"^device\[0\]\.nwk_s_key: expected 16 bytes"):
        load_devices(
            {
                "device": [
                    {
                        "dev_eui": "70b3d57ed0000001",
                        "dev_addr": "26011bda",
                        "nwk_s_key": "00",
                        "app_s_key": "11" * 16,
                    }
                ]
            }
        )


def test_world_readable_devices_file_refused(tmp_path: Path) -> None:
    p = tmp_path / "devices.toml"
    p.write_text(
        '[[device]]\ndev_eui = "70b3d57ed0000001"\njoin_eui = "70b3d57ed0001234"\napp_key = "'
        + "22" * 16
        + '"\n'
    )
    p.chmod(0o644)
    with pytest.raises(ConfigError, match="world-readable"):
        read_devices(p)
    p.chmod(0o600)
    assert len(read_devices(p)) == 1


def test_read_config_relative_paths(tmp_path: Path) -> None:
    p = tmp_path / "agent.toml"
    p.write_text('[agent]\ngateway_id = "g"\nstate_dir = "state"\ndevices_file = "devices.toml"\n')
    cfg = read_config(p)
    assert cfg.agent.state_dir == tmp_path / "state"
    assert cfg.agent.devices_file == tmp_path / "devices.toml"
    p.write_text("[agent\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        read_config(p)
