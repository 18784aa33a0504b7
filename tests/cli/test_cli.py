"""The field engineer's CLI against the real daemon (control socket) and its stopped database:
every read command's --json, exit codes, provisioning, alerts, outbox, export and key hygiene.

One daemon and one mosquitto per module; tests say whether they need it running or stopped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gateway_agent.cli.render import render_status
from hil.broker import Mosquitto, find_mosquitto
from hil.lorawan_crypto import build_data_frame
from tests.agentproc import REPO, Agent, Forwarder, write_toml

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
OTAA_KEY = "5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e"
NEW_NWK = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # keys given on the command line in tests below
NEW_APP = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
SECRETS = [NWK.hex(), APP.hex(), OTAA_KEY, NEW_NWK, NEW_APP]
EUI1, EUI2 = "70b3d57ed0000001", "70b3d57ed0000002"
ADDR = {EUI1: "260b3c5a", EUI2: "260b3c5b"}
FIELD_MAP = {"temperature_1_c": "temperature_c", "humidity_2_pct": "humidity_pct"}
HOT = {
    "name": "hot",
    "kind": "threshold",
    "measurement": "temperature_c",
    "above": 25,
    "for": "0s",
    "severity": "warning",
}


def device(eui: str) -> dict[str, Any]:
    return {
        "dev_eui": eui,
        "name": f"room {eui[-1]}",
        "class": "co2",
        "codec": "cayenne-lpp",
        "tags": ["school-017"],
        "dev_addr": ADDR[eui],
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
        "settings": {"field_map": FIELD_MAP},
    }


def lpp(temp_c: float, hum_pct: float = 40.0) -> bytes:
    t = round(temp_c * 10) & 0xFFFF
    return bytes([1, 0x67, t >> 8, t & 0xFF, 2, 0x68, round(hum_pct * 2)])


class Run:
    def __init__(self, p: subprocess.CompletedProcess[str]) -> None:
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def json(self) -> Any:
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"rc={self.rc}\nstdout={self.out[-3000:]}\nstderr={self.err[-3000:]}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.pop("GATEWAY_AGENT_CONFIG", None)
    env.update(extra)
    return env


class Env:
    def __init__(self, tmp: Path) -> None:
        self.broker = Mosquitto(workdir=tmp / "mosquitto")
        self.broker.start()
        # Long backoff: after a broker outage only `outbox retry` reconnects within the test.
        self.agent = Agent(
            tmp / "agent",
            self.broker.port,
            [device(EUI1), device(EUI2)],
            extra={
                "rules": [HOT],
                "upstream": {"backoff_initial_s": 30.0, "backoff_max_s": 60.0},
            },
        )
        self.cfg = str(self.agent.config_path)
        self.fcnt = {EUI1: 0, EUI2: 0}
        self.fw: Forwarder | None = None

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Run:
        p = subprocess.run(
            [sys.executable, "-m", "gateway_agent", "-c", self.cfg, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env=env or cli_env(),
            stdin=subprocess.DEVNULL,
        )
        return Run(p)

    def many(self, *calls: tuple[str, ...]) -> list[Run]:
        with ThreadPoolExecutor(4) as ex:
            return list(ex.map(lambda a: self.cli(*a), calls))

    @property
    def running(self) -> bool:
        return self.agent.proc is not None

    def online(self) -> None:
        if not self.running:
            self.agent.start()
            self.fw = Forwarder(self.agent.udp_port)

    def offline(self) -> None:
        if self.running:
            assert self.agent.stop() == 0

    def uplink(self, eui: str, temp: float) -> None:
        assert self.fw is not None and self.running
        phy = build_data_frame(
            2, bytes.fromhex(ADDR[eui]), self.fcnt[eui], NWK, APP, f_port=1, payload=lpp(temp)
        )
        self.fcnt[eui] += 1
        assert self.fw.push(phy) is not None, "PUSH_ACK"

    def wait_readings(self, n: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = self.agent.ask("readings", limit=10_000)
            if len(rows) >= n:
                return rows
            time.sleep(0.05)
        raise AssertionError(f"{len(rows)} readings, wanted {n}")

    def close(self) -> None:
        self.agent.kill()
        self.broker.stop()


def wait_until(cond: Callable[[], Any], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is required: apt-get install mosquitto")
    e = Env(tmp_path_factory.mktemp("cli"))
    try:
        e.online()
        for t in (20.0, 22.0, 27.0):  # the third raises `hot` on device 1
            e.uplink(EUI1, t)
        for t in (21.0, 21.5):
            e.uplink(EUI2, t)
        e.wait_readings(5)
        yield e
    finally:
        e.close()
        print(f"--- agent log:\n{e.agent.log()[-6000:]}")


READS = [
    ("status", "--json"),
    ("devices", "list", "--json"),
    ("devices", "show", EUI1, "--json"),
    ("readings", "show", "--json"),
    ("readings", "show", "--device", EUI1.upper(), "--json"),
    ("readings", "show", "--since", "1h", "--json"),
    ("readings", "show", "--limit", "2", "--json"),
    ("readings", "show", "--since", "2099-01-01", "--json"),
    ("alerts", "list", "--json"),
    ("outbox", "status", "--json"),
    ("export", "--json"),
    ("devices", "export", "--json"),
    ("plot", "--device", EUI1, "-m", "temperature_c", "--json"),
]


def check_reads(runs: list[Run], online: bool) -> dict[str, Any]:
    out = {}
    for args, r in zip(READS, runs, strict=True):
        assert r.rc == 0, (args, r)
        out[" ".join(a for a in args if a != "--json")] = r.json()
    st = out["status"]
    assert st["daemon"]["running"] is online
    assert st["devices"] == {"provisioned": 2, "heard_last_hour": 2}
    assert st["db"]["size_bytes"] > 0 and "depth" in st["outbox"]
    assert ("upstream" in st) is online
    devs = {d["dev_eui"]: d for d in out["devices list"]}
    assert set(devs) == {EUI1, EUI2}
    assert devs[EUI1]["last_values"]["temperature_c"] == 27.0
    assert devs[EUI1]["fcnt_up"] == 2 and devs[EUI1]["rssi"] == -70
    assert out[f"devices show {EUI1}"] == devs[EUI1]
    rows = out["readings show"]
    assert len(rows) == 5 and all(r["time_valid"] is True for r in rows)
    assert [r["fcnt"] for r in out[f"readings show --device {EUI1.upper()}"]] == [0, 1, 2]
    assert {r["dev_eui"] for r in out[f"readings show --device {EUI1.upper()}"]} == {EUI1}
    assert out["readings show --since 1h"] == rows
    assert out["readings show --limit 2"] == rows[-2:], "the latest N, oldest first"
    assert out["readings show --since 2099-01-01"] == []
    alerts = out["alerts list"]
    assert [(a["rule"], a["dev_eui"], a["state"]) for a in alerts] == [("hot", EUI1, "raised")]
    assert alerts[0]["value"] == 27.0 and isinstance(alerts[0]["acked"], bool)
    assert [r["id"] for r in out["export"]] == [r["id"] for r in rows]
    assert {d["dev_eui"] for d in out["devices export"]} == {EUI1, EUI2}
    series = out[f"plot --device {EUI1} -m temperature_c"]["series"]
    assert [p["value"] for p in series] == [20.0, 22.0, 27.0]
    return out


def test_read_commands_json_online_then_offline(env: Env) -> None:
    env.online()
    online = check_reads(env.many(*READS), online=True)
    assert online["status"]["upstream"]["connected"] is True
    env.offline()
    offline = check_reads(env.many(*READS), online=False)
    # Same figures from the socket and from the database.
    for k in ("devices list", "readings show", "alerts list", "export", "devices export"):
        assert offline[k] == online[k], k
    plot = f"plot --device {EUI1} -m temperature_c"
    assert offline[plot]["series"] == online[plot]["series"]


def test_status_screen_renders_online_and_offline(env: Env) -> None:
    env.offline()
    off = env.cli("status")
    env.online()
    on = env.cli("status")
    narrow = env.cli("status", env=cli_env(COLUMNS="50"))
    for r in (on, narrow, off):
        assert r.rc == 0 and r.err == "", r
        assert "devices" in r.out and "outbox" in r.out and "database" in r.out
    assert "running pid" in on.out and "2 of 2 heard" in on.out and "connected" in on.out
    assert "1 open" in on.out  # the `hot` alert
    assert "not running" in off.out and "upstream" not in off.out
    assert "b827ebfffe6c1a2b" in on.out, "the gateway that sent the uplinks"


def test_render_status_without_disk_figures() -> None:
    """Pure renderer: an unknown free-space figure must not blank the database line."""
    st = {
        "daemon": {"running": False},
        "devices": {"provisioned": 0, "heard_last_hour": 0},
        "outbox": {"depth": 3, "oldest_age_s": 4000.0},
        "db": {
            "size_bytes": 2_000_000,
            "cap_bytes": 512 * 2**20,
            "used_pct_of_cap": 0.4,
            "disk_free_bytes": None,
        },
        "clock": {"plausible": False, "synchronized": None},
    }
    con = Console(record=True, width=120)
    render_status(con, st)
    text = con.export_text()
    assert "2.0 MB of 537 MB cap (0.4%)" in text and "disk free" not in text
    assert "3 waiting, oldest 4000s" in text and "IMPLAUSIBLE" in text


def test_exit_codes(env: Env) -> None:
    env.online()
    runs = env.many(
        ("devices", "show", "70b3d57ed00000ff", "--json"),  # unknown -> 1
        ("devices", "show", "70b3zz7ed0000001", "--json"),  # bad hex -> 2
        ("devices", "show", "70b3d57ed00000", "--json"),  # 7 bytes -> 2
        ("readings", "show", "--device", "xyz", "--json"),  # bad hex -> 2
        ("readings", "show", "--since", "yesterday-ish", "--json"),  # bad --since -> 2
        ("devices", "downlink", EUI1, "0102"),  # missing --fport -> 2
        ("devices", "downlink", "70b3d57ed00000ff", "--fport", "5", "0102"),  # unknown -> 1
        ("devices", "downlink", EUI1, "--fport", "5", "01 0x"),  # bad hex -> 2
        ("devices", "downlink", EUI1, "--fport", "5", "00" * 223),  # fits no frame -> 2
        ("devices", "remove", "70b3d57ed00000ff"),  # unknown -> 1
        ("alerts", "ack", "no-such-alert"),  # -> 1
        ("export", "--format", "xml"),  # -> 2
        ("readings", "show", "--limit", "0"),  # -> 2
        ("no-such-command",),  # -> 2
    )
    assert [r.rc for r in runs] == [1, 2, 2, 2, 2, 2, 1, 2, 2, 1, 1, 2, 2, 2], runs
    for r in runs:
        assert r.out == "", r
        assert "Traceback" not in r.err, r
        if r.rc == 1:
            assert r.err.startswith("error: ") and r.err.count("\n") == 1, r
    assert "unknown device 70b3d57ed00000ff" in runs[6].err
    # A config file that does not exist: a failure naming it, not a traceback.
    missing = subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", "/nonexistent/agent.toml", "status"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(),
    )
    assert missing.returncode == 1 and "/nonexistent/agent.toml" in missing.stderr
    # GATEWAY_AGENT_CONFIG stands in for -c.
    by_env = subprocess.run(
        [sys.executable, "-m", "gateway_agent", "outbox", "status", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=cli_env(GATEWAY_AGENT_CONFIG=env.cfg),
    )
    assert by_env.returncode == 0 and "depth" in json.loads(by_env.stdout)


def test_devices_add_show_downlink_remove_online(env: Env) -> None:
    env.online()
    eui3 = "70-B3-D5-7E-D0-00-00-03"
    add, otaa = env.many(
        (
            "devices",
            "add",
            eui3,
            "--name",
            "bin 3",
            "--class",
            "bin",
            "--codec",
            "milesight/em310-udl",
            "--dev-addr",
            "26:0B:3C:5C",
            "--nwk-s-key",
            NEW_NWK.upper(),
            "--app-s-key",
            NEW_APP,
            "--tag",
            "north",
            "--tag",
            "depot",
            "--setting",
            "empty_mm=1200",
            "--setting",
            "full_mm=150",
            "--setting",
            "label=Back gate",
        ),
        ("devices", "add", "70b3d57ed0000004", "--join-eui", "70b3d57ed0001234", "--name", "otaa"),
    )
    assert add.rc == 0 and add.out.strip() == "added 70b3d57ed0000003", add
    assert otaa.rc == 2 and "app_key" in otaa.err, otaa  # OTAA without its AppKey
    otaa = env.cli(
        "devices",
        "add",
        "70b3d57ed0000004",
        "--join-eui",
        "70b3d57ed0001234",
        "--name",
        "otaa",
        env=cli_env(GA_APP_KEY=OTAA_KEY),
    )
    assert otaa.rc == 0, otaa
    show3, show4, text = env.many(
        ("devices", "show", "70b3d57ed0000003", "--json"),
        ("devices", "show", "70B3D57ED0000004", "--json"),
        ("devices", "show", "70b3d57ed0000003"),
    )
    d3 = show3.json()
    assert (d3["name"], d3["class"], d3["codec"], d3["dev_addr"]) == (
        "bin 3",
        "bin",
        "milesight/em310-udl",
        "260b3c5c",
    )
    assert d3["tags"] == ["north", "depot"] and d3["activation"] == "abp"
    assert d3["settings"] == {"empty_mm": 1200, "full_mm": 150, "label": "Back gate"}
    assert d3["origin"] == "cli" and d3["last_seen"] is None
    d4 = show4.json()
    assert d4["activation"] == "otaa" and d4["join_eui"] == "70b3d57ed0001234"
    assert d4["joined"] is False
    assert "dev_eui        70b3d57ed0000003" in text.out and "never" in text.out
    # The daemon decrypts the new device's uplinks at once (it reloaded its device table).
    phy = build_data_frame(
        2,
        bytes.fromhex("260b3c5c"),
        0,
        bytes.fromhex(NEW_NWK),
        bytes.fromhex(NEW_APP),
        f_port=85,
        payload=bytes.fromhex("0175610382e8030400 00".replace(" ", "")),
    )
    assert env.fw is not None and env.fw.push(phy) is not None
    wait_until(lambda: env.agent.ask("readings", dev_eui="70b3d57ed0000003"))
    rows = env.cli("readings", "show", "--device", "70b3d57ed0000003", "--json").json()
    assert rows and rows[0]["measurements"]["distance_mm"] == 1000
    dl = env.cli("devices", "downlink", EUI1, "--fport", "10", "--confirmed", "AA BB cc")
    assert dl.rc == 0 and dl.out.startswith("queued downlink ") and EUI1 in dl.out, dl
    rm = env.many(
        ("devices", "remove", "70b3d57ed0000004"), ("devices", "remove", "70b3d57ed0000003")
    )
    assert [r.rc for r in rm] == [0, 0]
    assert rm[0].out.strip() == "removed 70b3d57ed0000004"
    again = env.cli("devices", "remove", "70b3d57ed0000004")
    assert again.rc == 1 and "unknown device" in again.err
    listed = {d["dev_eui"] for d in env.cli("devices", "list", "--json").json()}
    assert listed == {EUI1, EUI2}


def test_readings_tail(env: Env) -> None:
    env.online()
    for args, n in ((("--json",), 2), ((), 1)):
        p = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway_agent",
                "-c",
                env.cfg,
                "readings",
                "tail",
                "--count",
                str(n),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=cli_env(),
        )
        # The tail follows from the moment it connects: keep sending until it has its N.
        for _ in range(60):
            if p.poll() is not None:
                break
            env.uplink(EUI2, 22.25)
            time.sleep(0.25)
        out, err = p.communicate(timeout=10)
        assert p.returncode == 0, err
        lines = out.splitlines()
        assert len(lines) == n
        if args:
            rows = [json.loads(line) for line in lines]
            assert all(r["dev_eui"] == EUI2 for r in rows)
            assert rows[1]["fcnt"] > rows[0]["fcnt"]
            m = rows[0]["measurements"]
            assert m["humidity_pct"] == 40.0 and m["temperature_c"] == pytest.approx(22.2, abs=0.1)
        else:
            assert EUI2 in lines[0] and "temperature_c=" in lines[0] and "rssi=-70" in lines[0]


def test_export_csv_and_json(env: Env, tmp_path: Path) -> None:
    env.online()
    out_csv = tmp_path / "r.csv"
    csv_file, csv_dev, js, jsl, future = env.many(
        ("export", "--format", "csv", "-o", str(out_csv)),
        ("export", "--device", EUI1, "--since", "1h"),
        ("export", "--format", "json", "--since", "1h"),
        ("export", "--format", "jsonl", "--device", EUI2),
        ("export", "--format", "json", "--since", "2099-01-01T00:00:00"),
    )
    for r in (csv_file, csv_dev, js, jsl, future):
        assert r.rc == 0, r
    assert csv_file.out == "" and "exported" in csv_file.err
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    readings = js.json()
    assert len(rows) == sum(len(r["measurements"]) for r in readings)
    assert set(rows[0]) == {"time", "dev_eui", "fcnt", "f_port", "measurement", "value"}
    assert rows[0]["time"].endswith("+00:00")
    dev_rows = list(csv.DictReader(io.StringIO(csv_dev.out)))
    assert dev_rows and {r["dev_eui"] for r in dev_rows} == {EUI1}
    assert {r["measurement"] for r in dev_rows} == {"temperature_c", "humidity_pct"}
    lines = [json.loads(line) for line in jsl.out.splitlines()]
    assert lines and {r["dev_eui"] for r in lines} == {EUI2}
    assert future.json() == []


def test_alerts_list_and_ack(env: Env) -> None:
    env.online()
    env.uplink(EUI2, 30.0)  # a second `hot` alert, on device 2
    wait_until(lambda: len(env.agent.ask("alerts", open=True)) >= 2)
    open_ = env.cli("alerts", "list", "--open", "--json").json()
    assert {a["dev_eui"] for a in open_} == {EUI1, EUI2}
    amb = env.cli("alerts", "ack", "hot:")
    assert amb.rc == 1 and "matches 2 alerts" in amb.err, amb
    assert len(env.cli("alerts", "list", "--open", "--json").json()) == 2, "nothing acked"
    a2 = next(a for a in open_ if a["dev_eui"] == EUI2)
    ack = env.cli("alerts", "ack", a2["id"][: len("hot:") + 16 + 1])  # unique prefix
    assert ack.rc == 0 and ack.out.strip() == f"acknowledged {a2['id']}", ack
    still = env.cli("alerts", "list", "--open", "--json").json()
    assert [a["dev_eui"] for a in still] == [EUI1]
    table = env.cli("alerts", "list")
    assert table.rc == 0 and a2["id"] in table.out, "ids are printed whole (copied into `ack`)"
    assert "(acked)" in table.out
    # Offline too.
    env.offline()
    a1 = still[0]["id"]
    off = env.cli("alerts", "ack", a1)
    assert off.rc == 0, off
    assert env.cli("alerts", "list", "--open", "--json").json() == []
    acked = {a["id"]: a["acked"] for a in env.cli("alerts", "list", "--json").json()}
    assert acked[a1] is True and acked[a2["id"]] is True


def test_devices_offline_add_import_export(env: Env, tmp_path: Path) -> None:
    env.offline()
    good = tmp_path / "good.toml"
    write_toml(
        good,
        {
            "device": [
                {
                    "dev_eui": f"70b3d57ed00001{i:02x}",
                    "name": f"gully {i}",
                    "class": "gully",
                    "dev_addr": f"260c00{i:02x}",
                    "nwk_s_key": NEW_NWK,
                    "app_s_key": NEW_APP,
                    "settings": {"mount_mm": 3000},
                }
                for i in range(3)
            ]
        },
    )
    bad = tmp_path / "bad.toml"
    write_toml(
        bad,
        {
            "device": [
                {
                    "dev_eui": "70b3d57ed0000201",
                    "dev_addr": "260d0001",
                    "nwk_s_key": NEW_NWK,
                    "app_s_key": NEW_APP,
                },
                {
                    "dev_eui": "70b3d57ed0000202",
                    "dev_addr": "260d0002",
                    "nwk_s_key": NEW_NWK,
                    "app_s_key": NEW_APP[:-2] + "zz",
                },
            ]
        },
    )
    imp_bad = env.cli("devices", "import", str(bad))
    assert imp_bad.rc == 2 and "device[1].app_s_key" in imp_bad.err, imp_bad
    assert NEW_APP[:-2] not in imp_bad.err, "the rest of a key is still a key"
    imp = env.cli("devices", "import", str(good))
    assert imp.rc == 0 and imp.out.strip() == "imported 3 devices", imp
    devs = {d["dev_eui"] for d in env.cli("devices", "list", "--json").json()}
    assert {"70b3d57ed0000100", "70b3d57ed0000102"} <= devs
    assert "70b3d57ed0000201" not in devs, "a file with an error imports nothing"
    # Export (TOML) parses back, keeps settings and tags, carries no keys.
    exp = env.cli("devices", "export")
    assert exp.rc == 0
    doc = tomllib.loads(exp.out)
    by = {d["dev_eui"]: d for d in doc["device"]}
    assert by["70b3d57ed0000101"]["settings"] == {"mount_mm": 3000}
    assert by[EUI1]["settings"] == {"field_map": FIELD_MAP} and by[EUI1]["tags"] == ["school-017"]
    assert not any(k in d for d in doc["device"] for k in ("nwk_s_key", "app_s_key", "app_key"))
    # Offline edits are what the daemon sees when it starts.
    for i in range(3):
        assert env.cli("devices", "remove", f"70b3d57ed00001{i:02x}").rc == 0
    assert env.cli("devices", "downlink", "70b3d57ed00001ff", "--fport", "1", "00").rc == 1
    env.online()
    assert {d["dev_eui"] for d in env.agent.ask("devices")} == {EUI1, EUI2}


def test_outbox_status_and_retry(env: Env) -> None:
    env.online()
    env.broker.stop()
    for t in (21.0, 21.1, 21.2):
        env.uplink(EUI1, t)
    wait_until(lambda: env.agent.ask("outbox")["depth"] >= 3)
    ob = env.cli("outbox", "status", "--json").json()
    assert ob["depth"] >= 3 and ob["by_kind"] and ob["oldest_age_s"] is not None
    text = env.cli("outbox", "status")
    assert text.rc == 0 and f"{ob['depth']} messages waiting" in text.out
    env.broker.start()
    retry = env.cli("outbox", "retry")
    assert retry.rc == 0 and "retry" in retry.out
    # The backoff is up to 30 s; the retry reconnects at once and the queue drains.
    wait_until(lambda: env.agent.ask("outbox")["depth"] == 0, timeout_s=15)
    assert env.cli("outbox", "status", "--json").json()["depth"] == 0
    env.offline()
    off, tail = env.many(("outbox", "retry"), ("readings", "tail", "--count", "1"))
    assert off.rc == 1 and "not running" in off.err
    assert tail.rc == 1 and "not running" in tail.err and tail.out == ""


def test_keys_never_printed_or_logged(env: Env) -> None:
    env.online()
    # A key that has been through the CLI, the control socket and the daemon's reload.
    added = env.cli(
        "devices",
        "add",
        "70b3d57ed0000005",
        "--dev-addr",
        "260b3c5e",
        env=cli_env(GA_NWK_S_KEY=NEW_NWK, GA_APP_S_KEY=NEW_APP),
    )
    assert added.rc == 0, added
    online = env.many(
        ("status",),
        ("status", "--json"),
        ("devices", "list"),
        ("devices", "list", "--json"),
        ("devices", "show", "70b3d57ed0000005", "--json"),
        ("devices", "export"),
    )
    env.offline()
    offline = env.many(
        ("status", "--json"),
        ("devices", "show", "70b3d57ed0000005"),
        ("devices", "export", "--json"),
    )
    outputs = [*online, *offline, env.cli("devices", "remove", "70b3d57ed0000005")]
    assert [r for r in outputs if r.rc] == []
    text = "".join(r.out + r.err for r in outputs) + env.agent.log()
    assert "70b3d57ed0000005" in text and "260b3c5e" in text
    for key in SECRETS:
        for form in (key, key.upper(), key[:16], key[16:]):
            assert form not in text, f"key material {form} printed or logged"
