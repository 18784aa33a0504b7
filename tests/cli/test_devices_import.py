"""`gateway-agent devices import FILE --from tts|chirpstack|csv [--dry-run]` on export files as
The Things Stack (`ttn-lw-cli end-devices list/get`) and ChirpStack v4's API print them, against a
stopped agent's database and a running agent: what maps to codecs and classes, what is reported as
not mapped, keys only in the database, malformed files refused whole."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.agentproc import REPO, Agent, Forwarder

FIX = REPO / "tests/fixtures/imports"
ROOM = {"dev_eui": "70b3d57ed0000101", "name": "room 1", "class": "co2", "dev_addr": "260c0001",
        "nwk_s_key": "00" * 16, "app_s_key": "11" * 16}  # fmt: skip
CODECS = {"codecs": {"ttn_repository": str(FIX / "ttnrepo")}}


def cli(agent: Agent, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(agent.config_path), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def keys_in(path: Path) -> set[str]:
    """Every key string in an export file (any case), to prove none is ever printed."""
    out: set[str] = set()

    def walk(v: object, name: str = "") -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, name)
        elif isinstance(v, str) and len(v) == 32 and (name.lower().endswith("key")):
            out.update({v.lower(), v.upper()})

    if path.suffix == ".csv":
        for line in path.read_text().splitlines()[1:]:
            out.update(c.lower() for c in line.split(",") if len(c) == 32)
    else:
        text = path.read_text()
        docs = [json.loads(x) for x in text.splitlines() if x.strip()] if path.suffix == ".jsonl" \
            else [json.loads(text)]  # fmt: skip
        walk(docs)
    out.discard("0" * 32)
    return out


def assert_no_keys(path: Path, *texts: str) -> None:
    for k in keys_in(path):
        for t in texts:
            assert k not in t and k.lower() not in t.lower(), f"a key of {path.name} was printed"


def db_devices(agent: Agent) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(agent.state / "agent.db")
    db.row_factory = sqlite3.Row
    try:
        return {r["dev_eui"]: r for r in db.execute("SELECT * FROM devices")}
    finally:
        db.close()


def stopped_agent(tmp_path: Path, extra: dict[str, object] | None = None) -> Agent:
    agent = Agent(tmp_path / "agent", None, [ROOM], extra)
    agent.start()  # creates the database
    assert agent.stop() == 0
    return agent


def test_tts_dry_run_then_import_offline(tmp_path: Path) -> None:
    agent = stopped_agent(tmp_path, CODECS)
    f = FIX / "tts-list.json"
    assert len(keys_in(f)) == 2 * 8  # the check below looks for these (both cases)
    r = cli(agent, "devices", "import", str(f), "--from", "tts", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert (plan["dry_run"], plan["written"], plan["add"], plan["update"]) == (True, 0, 4, 0)
    by = {d["dev_eui"]: d for d in plan["devices"]}
    p7 = by["a81758fffe0401a1"]  # elsys/ers-co2: not in this repository copy, built in
    assert (p7["codec"], p7["class"], p7["activation"]) == ("elsys/ers-co2", "co2", "otaa")
    assert p7["join_eui"] == "a81758fffe000001" and p7["tags"] == ["room=P7", "school=017"]
    assert any("OTAA session is not carried" in n for n in p7["notes"])
    hall = by["70b3d57ed0000a02"]  # in the repository: ttn:VENDOR/MODEL
    assert hall["codec"] == "ttn:fife-sensors/room-co2"
    bin_ = by["24e124713b190001"]  # milesight-iot (TTN's brand id) -> the built-in milesight codec
    assert (bin_["codec"], bin_["class"], bin_["activation"]) == (
        "milesight/em310-udl",
        "bin",
        "abp",
    )
    assert bin_["dev_addr"] == "260b1f07"
    gully = by["0004a30b001c2f55"]  # no version_ids: reported, class other
    assert (
        gully["codec"] is None and gully["class"] == "other" and gully["name"] == "gully-north-rd"
    )
    assert any("no version_ids" in n for n in gully["notes"])
    assert set(db_devices(agent)) == {ROOM["dev_eui"]}, "a dry run wrote to the database"
    assert_no_keys(f, r.stdout, r.stderr)

    r = cli(agent, "devices", "import", str(f), "--from", "tts", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "add       a81758fffe0401a1  P7 classroom co2 elsys/ers-co2 otaa" in r.stdout
    assert "note: codec: no version_ids" in r.stdout
    assert "dry run: 4 to add, 0 to update, 0 unchanged; nothing written" in r.stdout

    r = cli(agent, "devices", "import", str(f), "--from", "tts")
    assert r.returncode == 0, r.stderr
    assert "imported 4 devices (4 add, 0 update, 0 unchanged)" in r.stdout
    assert_no_keys(f, r.stdout, r.stderr)
    rows = db_devices(agent)
    assert len(rows) == 5
    src = {d["ids"]["dev_eui"].lower(): d for d in json.loads(f.read_text())}
    assert rows["a81758fffe0401a1"]["app_key"] == bytes.fromhex(
        src["a81758fffe0401a1"]["root_keys"]["app_key"]["key"]
    )
    keys = src["24e124713b190001"]["session"]["keys"]
    assert rows["24e124713b190001"]["nwk_s_key"] == bytes.fromhex(keys["f_nwk_s_int_key"]["key"])
    assert rows["24e124713b190001"]["app_s_key"] == bytes.fromhex(keys["app_s_key"]["key"])
    assert {r["origin"] for e, r in rows.items() if e != ROOM["dev_eui"]} == {"import"}

    # Again, and with one name changed: unchanged / update with the change shown.
    doc = json.loads(f.read_text())
    doc[0]["name"] = "P7 classroom (north)"
    g = tmp_path / "again.json"
    g.write_text(json.dumps(doc))
    r = cli(agent, "devices", "import", str(g), "--from", "tts", "--dry-run", "--json")
    plan = json.loads(r.stdout)
    assert (plan["add"], plan["update"], plan["unchanged"]) == (0, 1, 3)
    changed = next(d for d in plan["devices"] if d["action"] == "update")
    assert changed["changes"] == ['name: "P7 classroom" -> "P7 classroom (north)"']
    log = (agent.tmp / "agent.log").read_text() if (agent.tmp / "agent.log").exists() else ""
    assert_no_keys(f, log)


def test_tts_get_and_json_lines(tmp_path: Path) -> None:
    agent = stopped_agent(tmp_path, CODECS)
    r = cli(agent, "devices", "import", str(FIX / "tts-get-otaa.json"), "--from", "tts", "--json")
    assert r.returncode == 0, r.stderr
    assert [d["codec"] for d in json.loads(r.stdout)["devices"]] == ["ttn:fife-sensors/room-co2"]
    r = cli(agent, "devices", "import", str(FIX / "tts-list.jsonl"), "--from", "tts", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["written"] == 2
    assert len(db_devices(agent)) == 4


def test_without_repository_notes_the_missing_codec(tmp_path: Path) -> None:
    agent = stopped_agent(tmp_path)
    r = cli(agent, "devices", "import", str(FIX / "tts-get-otaa.json"), "--from", "tts", "--json")
    assert r.returncode == 0, r.stderr
    (dev,) = json.loads(r.stdout)["devices"]
    assert dev["codec"] is None
    assert any("ttn_repository" in n and "fife-sensors/room-co2" in n for n in dev["notes"])


def test_malformed_files_import_nothing(tmp_path: Path) -> None:
    agent = stopped_agent(tmp_path, CODECS)
    cases = {
        ("tts-malformed.json", "tts"): [
            "record 1 (device_id 'p7-classroom'): root_keys.app_key.key: expected 16 bytes",
            "record 3 (device_id 'bin-market-st'): session.keys.app_s_key.key: wrapped by a KEK",
            "record 4 (device_id 'gully-north-rd'): ids.dev_eui: expected 8 bytes",
            "record 5 (device_id 'hall-co2-copy'): dev_eui 70b3d57ed0000a02 duplicates record 2",
            "record 6 (device_id 'p8-classroom'): lorawan_version: MAC_V1_1",
            "5 problem(s); nothing imported",
        ],
        ("tts-no-keys.json", "tts"): [
            "record 1 (device_id 'p7-classroom'): root_keys.app_key.key: missing for an OTAA "
            "device (supports_join): export with `ttn-lw-cli end-devices get APP DEV --root-keys`",
            "record 2 (device_id 'bin-market-st'): no keys:",
            "`ttn-lw-cli end-devices get APP DEV --session`",
        ],
        ("chirpstack-malformed.json", "chirpstack"): [
            "record 2 (name 'Gully, Main St'): activation.dev_addr: expected hex digits",
            "record 3 (name 'Boiler room'): nwk_key: expected hex digits",
        ],
        ("chirpstack-no-keys.json", "chirpstack"): [
            "record 1 (name 'Library'): no keys", "DeviceKeys",
        ],
        ("devices-malformed.csv", "csv"): [
            "line 2 (name 'Outlet 2 hot'): class: expected one of co2, legionella",
            "line 4 (name 'Gully 5'): no keys",
        ],
        ("tts-list.json", "chirpstack"): [
            "record 1 (device_id 'p7-classroom'): dev_eui: missing (this looks like The Things "
            "Stack's JSON: --from tts)",
        ],
        ("chirpstack-devices.json", "tts"): ["--from chirpstack"],
    }  # fmt: skip
    for (name, fmt), wanted in cases.items():
        r = cli(agent, "devices", "import", str(FIX / name), "--from", fmt)
        assert r.returncode == 2, (name, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr and r.stdout == ""
        for w in wanted:
            assert w in r.stderr, (name, w, r.stderr)
        assert_no_keys(FIX / name, r.stderr)
        assert set(db_devices(agent)) == {ROOM["dev_eui"]}, f"{name} half-imported"
    # A codec that does not exist is found in the check, before anything is written.
    bad_codec = tmp_path / "codec.csv"
    text = (FIX / "devices.csv").read_text().replace("decentlab/dl-mbx", "no/such-codec")
    bad_codec.write_text(text)
    r = cli(agent, "devices", "import", str(bad_codec), "--from", "csv")
    assert r.returncode == 2 and "line 3 (name 'Gully 4'): codec: unknown codec" in r.stderr
    for content, wanted in (
        ("", "the file is empty"),
        ('[{"ids": ', "not JSON: line 1"),
        ('{"ids": {}}\n{"ids": \n', "line 2: not JSON"),
        ("[1, 2]", "record 1: expected an object, got int"),
    ):
        p = tmp_path / "bad.json"
        p.write_text(content)
        r = cli(agent, "devices", "import", str(p), "--from", "tts")
        assert r.returncode == 2 and wanted in r.stderr, (content, r.stderr)
        assert "Traceback" not in r.stderr
    p.write_bytes(b'[{"name": "caf\xe9"}]')
    r = cli(agent, "devices", "import", str(p), "--from", "tts")
    assert r.returncode == 2 and "not UTF-8 at byte 14" in r.stderr
    assert set(db_devices(agent)) == {ROOM["dev_eui"]}


def test_chirpstack_and_csv_into_running_daemon(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "agent", None, [ROOM])
    agent.start()
    try:
        f = FIX / "chirpstack-devices.json"
        r = cli(agent, "devices", "import", str(f), "--from", "chirpstack", "--json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert (out["written"], out["add"]) == (3, 3)
        assert_no_keys(f, r.stdout, r.stderr)
        live = {d["dev_eui"]: d for d in agent.ask("devices")}
        lib = live["24e124710c140101"]  # profile "Milesight AM319 EU868", key in nwk_key (1.0.x)
        assert (lib["codec"], lib["class"], lib["activation"]) == ("milesight/am319", "co2", "otaa")
        assert lib["tags"] == ["building=library"]
        gully = live["70b3d5e75e01b7c0"]  # ABP from the activation; variables kept for JS codecs
        assert (gully["codec"], gully["class"], gully["dev_addr"]) == (
            "decentlab/dl-mbx",
            "gully",
            "0187ab12",
        )
        assert gully["settings"] == {"variables": {"mount_height_mm": "1500"}}
        boiler = next(d for d in out["devices"] if d["dev_eui"] == "a840410000000c01")
        assert boiler["codec"] is None and any("Generic class A OTAA" in n for n in boiler["notes"])

        c = FIX / "devices.csv"
        r = cli(agent, "devices", "import", str(c), "--from", "csv")
        assert r.returncode == 0, r.stderr
        assert "imported 2 devices (2 add, 0 update, 0 unchanged)" in r.stdout
        assert_no_keys(c, r.stdout, r.stderr)
        live = {d["dev_eui"]: d for d in agent.ask("devices")}
        assert live["70b3d57ed0000b01"]["tags"] == ["fife", "school-017"]
        assert live["70b3d57ed0000b02"]["activation"] == "abp"
        assert len(live) == 6
        r = cli(agent, "devices", "import", str(FIX / "devices-malformed.csv"), "--from", "csv")
        assert r.returncode == 2
        assert len(agent.ask("devices")) == 6
    finally:
        assert agent.stop() == 0
    assert_no_keys(FIX / "chirpstack-devices.json", agent.log())
    rows = db_devices(agent)
    act = json.loads(f.read_text())[1]["deviceActivation"]
    assert rows["70b3d5e75e01b7c0"]["app_s_key"] == bytes.fromhex(act["appSKey"])


def test_toml_import_unchanged_and_dry_run(tmp_path: Path) -> None:
    agent = stopped_agent(tmp_path)
    f = tmp_path / "more.toml"
    f.write_text(
        '[[device]]\ndev_eui = "70b3d57ed0000c01"\nname = "x"\njoin_eui = "70b3d57ed0000000"\n'
        f'app_key = "{"ab" * 16}"\n'
    )
    r = cli(agent, "devices", "import", str(f), "--dry-run")
    assert r.returncode == 0 and "dry run: 1 to add" in r.stdout, r.stderr
    assert set(db_devices(agent)) == {ROOM["dev_eui"]}
    r = cli(agent, "devices", "import", str(f))
    assert r.returncode == 0 and "imported 1 devices" in r.stdout, r.stderr
    assert "ab" * 16 not in r.stdout
    assert len(db_devices(agent)) == 2


def test_parser_details() -> None:
    """The pure parser: ABP counters past 16 bits flagged, ChirpStack JSON lines as the README's
    export loop writes them, snake_case as well as camelCase."""
    from gateway_agent.config.importers import parse

    doc = json.loads((FIX / "tts-list.json").read_text())
    doc[2]["session"]["last_f_cnt_up"] = 70_000
    by = {i.dev_eui: i for i in parse(json.dumps(doc), "tts")}
    assert by["24e124713b190001"].fcnt_up == 70_000, "TTS gives the last counter seen"
    assert any(
        "last_f_cnt_up 70000: carried" in n and "above 70000" in n
        for n in by["24e124713b190001"].notes
    )
    assert by["0004a30b001c2f55"].fcnt_up == 77
    recs = json.loads((FIX / "chirpstack-devices.json").read_text())
    lines = "\n".join(json.dumps(r) for r in recs) + "\n"
    got = parse(lines, "chirpstack")
    assert [i.label for i in got][0] == "line 1 (name 'Library')"
    assert [i.raw["dev_eui"] for i in got] == [
        "24e124710c140101",
        "70b3d5e75e01b7c0",
        "a840410000000c01",
    ]
    snake = {"device": {"dev_eui": "24e124710c140101", "name": "x", "join_eui": "24e124c0002a0001"},
             "device_keys": {"nwk_key": "ab" * 16}}  # fmt: skip
    (one,) = parse(json.dumps(snake), "chirpstack")
    assert one.raw["app_key"] == "ab" * 16 and one.raw["join_eui"] == "24e124c0002a0001"


def test_abp_frame_counter_past_16_bits_is_carried(tmp_path: Path) -> None:
    """An ABP device that has sent 70,000 uplinks on The Things Stack: its counter comes with
    it, so the agent widens the 16 bits on air to the right 32 and the MIC checks (without the
    counter it would refuse the device's frames until a new session)."""
    from tests.durability_kit import APP, NWK, frame

    dev = {"eui": "70b3d57ed0000a77", "addr": "260b1f77"}
    rec = {
        "ids": {"device_id": "bin-70k", "dev_eui": dev["eui"].upper(), "dev_addr": dev["addr"]},
        "name": "Bin 70k",
        "supports_join": False,
        "session": {
            "dev_addr": dev["addr"].upper(),
            "keys": {"f_nwk_s_int_key": {"key": NWK.hex()}, "app_s_key": {"key": APP.hex()}},
            "last_f_cnt_up": 70_000,
        },
    }
    f = tmp_path / "tts.json"
    f.write_text(json.dumps([rec]))
    agent = Agent(tmp_path / "a", None, [])
    r = cli(agent, "devices", "import", str(f), "--from", "tts")
    assert r.returncode == 0, r.stderr
    assert_no_keys(f, r.stdout, r.stderr)
    r = cli(agent, "devices", "import", str(f), "--from", "tts")  # again: never lowered
    agent.start()
    try:
        fw = Forwarder(agent.udp_port)
        fw.push(frame(dev, 70_001))
        deadline = time.monotonic() + 10
        while agent.counter("readings_accepted") < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = agent.ask("readings", dev_eui=dev["eui"])
        assert [row["fcnt"] for row in rows] == [70_001]
        fw.push(frame(dev, 70_000))  # the last one TTS saw: a replay here too
        time.sleep(0.5)
        assert len(agent.ask("readings", dev_eui=dev["eui"])) == 1
    finally:
        agent.stop()
