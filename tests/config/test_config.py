"""Config loading: frozen tree, key-path errors, devices file, permissions."""

from __future__ import annotations

import dataclasses
import json
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


# --------------------------------------------------------------------------- files a user wrote
# Issue #16 items 7 and 9: bad bytes are a one-line refusal naming the file and the byte offset,
# never a traceback, in `config check`, `run` and a SIGHUP reload; `config check` refuses what
# `run` refuses.

DEVICE = {"dev_eui": "70b3d57ed0000001", "join_eui": "70b3d57ed0001234", "app_key": "22" * 16}


def write_files(tmp: Path, **upstream: Any) -> tuple[Path, Path]:
    import tomli_w

    devs = tmp / "devices.toml"
    devs.write_text(tomli_w.dumps({"device": [DEVICE]}))
    devs.chmod(0o600)
    cfg = tmp / "agent.toml"
    doc = {
        "agent": {"gateway_id": "gw", "state_dir": str(tmp / "state"), "devices_file": str(devs)},
        "upstream": {"enabled": False, **upstream},
    }
    cfg.write_text(tomli_w.dumps(doc))
    return cfg, devs


def check(cfg: Path, *extra: str) -> Any:
    from click.testing import CliRunner

    from gateway_agent.main import main

    r = CliRunner().invoke(main, ["config", "check", str(cfg), *extra])
    # A traceback would be any exception but the SystemExit of a refusal.
    assert isinstance(r.exception, SystemExit | None), r.exc_info
    return r


def put_bad_byte(p: Path, after: bytes) -> int:
    """Insert 0xff after the first `after`; returns its byte offset."""
    data = p.read_bytes()
    at = data.index(after) + len(after)
    p.write_bytes(data[:at] + b"\xff" + data[at:])
    return at


@pytest.mark.parametrize("which", ["config", "devices"])
def test_config_check_names_the_file_and_offset_of_a_non_utf8_byte(
    tmp_path: Path, which: str
) -> None:
    cfg, devs = write_files(tmp_path)
    target = cfg if which == "config" else devs
    at = put_bad_byte(target, b'gateway_id = "g' if which == "config" else b'dev_eui = "70')
    r = check(cfg)
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1, r.stderr
    assert str(target) in r.stderr and f"not UTF-8: byte 0xff at offset {at}" in r.stderr
    j = json.loads(check(cfg, "--json").stdout)
    assert j["valid"] is False and j["file"] == str(target) and f"offset {at}" in j["error"]
    with pytest.raises(ConfigError, match=f"offset {at} \\(line [0-9]+, column [0-9]+\\)"):
        read_config(cfg) if which == "config" else read_devices(devs)


def test_a_leading_bom_is_accepted(tmp_path: Path) -> None:
    cfg, devs = write_files(tmp_path)
    for p in (cfg, devs):
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    assert check(cfg).exit_code == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = " + "1" * 5000, "a number too long at offset 4"),
        ("a = " + "[" * 3000 + "]" * 3000, "nested more than 32 levels deep"),
        ("a." * 100 + "b = 1", "nested more than 32 levels deep"),
        ('[agent]\ngateway_id = "g\\u0000"\n', "agent.gateway_id: must not contain control"),
        (
            '[agent]\ngateway_id = "g"\nstate_dir = "a\\u0000b"\n',
            "agent.state_dir: expected a path",
        ),
        ('[agent]\ngateway_id = "g"\nstate_dir = "~no_such_user_xyz/s"\n', "cannot expand ~"),
        ('[agent]\ngateway_id = "g"\n[metrics]\nlisten = "127.0.0.1:²"\n', "metrics.listen"),
        (
            '[agent]\ngateway_id = "g"\n[metrics]\nlisten = "1:' + "9" * 5000 + '"\n',
            "metrics.listen",
        ),
        ("a = 1\x00", "not valid TOML"),
    ],
)
def test_odd_bytes_and_values_are_config_errors_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    p = tmp_path / "agent.toml"
    p.write_bytes(text.encode())
    with pytest.raises(ConfigError) as ei:
        read_config(p)
    assert str(ei.value).startswith(f"{p}: ") and message in str(ei.value)
    assert len(str(ei.value)) < 300 and "\n" not in str(ei.value)


def test_unreadable_or_directory_config_is_one_line(tmp_path: Path) -> None:
    for p in (tmp_path, tmp_path / "missing.toml"):
        with pytest.raises(ConfigError, match="cannot read"):
            read_config(p)
    cfg, devs = write_files(tmp_path)
    devs.unlink()
    devs.mkdir(mode=0o700)
    r = check(cfg)
    assert r.exit_code == 2 and f"{devs}: cannot read: Is a directory" in r.stderr


def run_refusal(cfg: Path) -> str:
    """`gateway-agent run` on `cfg`: it must refuse; returns the reason it logs."""
    import re
    import subprocess
    import sys

    from tests.agentproc import REPO

    p = subprocess.run(
        [sys.executable, "-m", "gateway_agent", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert p.returncode == 1, p.stderr
    m = re.search(r'config_invalid error="(.*)"', p.stderr)
    assert m, p.stderr
    return m.group(1)


@pytest.mark.parametrize("which", ["key_file", "password_file", "devices_file"])
def test_config_check_refuses_a_world_readable_secret_file_as_run_does(
    tmp_path: Path, which: str
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    up: dict[str, Any] = {"password_file": str(secret), "username": "u"}
    if which == "key_file":
        up = {"tls": True, "cert_file": str(secret), "key_file": str(secret)}
    cfg, devs = write_files(tmp_path, **up)
    assert check(cfg).exit_code == 0
    (devs if which == "devices_file" else secret).chmod(0o644)
    r = check(cfg)
    assert r.exit_code == 2 and "world-readable" in r.stderr
    assert r.stderr.strip() == f"invalid: {run_refusal(cfg)}"


def test_config_check_refuses_a_state_dir_run_cannot_make(tmp_path: Path) -> None:
    cfg, _ = write_files(tmp_path)
    (tmp_path / "state").write_text("a file, not a directory")
    r = check(cfg)
    assert r.exit_code == 2 and "agent.state_dir" in r.stderr and "Not a directory" in r.stderr
    run_refusal(cfg)
    assert not list(tmp_path.glob("state*/*")), "config check leaves the disk alone"


def test_password_file_not_utf8_is_refused_with_offset_not_content(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_bytes(b"pa\xfe\xfess")
    secret.chmod(0o600)
    cfg, _ = write_files(tmp_path, password_file=str(secret), username="u")
    r = check(cfg)
    assert r.exit_code == 2 and "upstream.password_file" in r.stderr and "offset 2" in r.stderr
    assert "0xfe" not in r.stderr and "pa" not in r.stderr.split("offset")[1]


def test_other_commands_show_a_bad_config_as_one_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gateway_agent.main import main

    cfg, _ = write_files(tmp_path)
    at = put_bad_byte(cfg, b"[agent]")
    r = CliRunner().invoke(main, ["-c", str(cfg), "status"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert (
        r.stderr
        == f"error: {cfg}: not UTF-8: byte 0xff at offset {at} (line 1, column 8); save the file as UTF-8\n"
    )


@pytest.mark.parametrize("which", ["config", "devices", "key_file"])
def test_sighup_with_a_file_run_would_refuse_keeps_old_config_and_runs(
    tmp_path: Path, which: str
) -> None:
    import os
    import signal
    import time

    from tests.agentproc import Agent

    secret = tmp_path / "client.key"
    secret.write_text("not a real key\n")
    secret.chmod(0o600)
    tls = {"tls": True, "cert_file": str(secret), "key_file": str(secret)}
    agent = Agent(tmp_path, None, [DEVICE], extra={"upstream": tls})
    agent.start()
    try:
        if which == "key_file":
            secret.chmod(0o644)
            expect = f"upstream.key_file: {secret} holds keys and is world-readable"
        else:
            target = agent.config_path if which == "config" else agent.devices_path
            at = put_bad_byte(target, b"[")
            expect = f"{target}: not UTF-8: byte 0xff at offset {at}"
        assert agent.proc is not None
        os.kill(agent.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "config_reload" not in agent.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        line = next(x for x in agent.log().splitlines() if "config_reload" in x)
        assert "config_reload_failed" in line and expect in line, agent.log()
        assert "Traceback" not in agent.log()
        assert agent.ask("ping")["pong"] is True, "the old config stays; the daemon keeps running"
        assert agent.counter("config_reload_failed") == 1
    finally:
        assert agent.stop() == 0


def test_codecs_section_sets_where_ttn_codecs_resolve(tmp_path: Path) -> None:
    from gateway_agent.config import load_config

    base = {"agent": {"gateway_id": "x", "state_dir": str(tmp_path)}, "sources": [], "upstream": {}}
    cfg = load_config({**base, "codecs": {"ttn_repository": "lorawan-devices"}}, base_dir=tmp_path)
    assert cfg.codecs.ttn_repository == tmp_path / "lorawan-devices"
    assert load_config(base).codecs.ttn_repository is None
    with pytest.raises(ConfigError) as e:
        load_config({**base, "codecs": {"ttn_repo": "x"}})
    assert e.value.key_path == "codecs.ttn_repo"
