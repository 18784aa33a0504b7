"""`gateway-agent readings import FILE` against a stopped agent's database and a running agent
(control socket): summary, idempotent re-import, unknown devices, bad files, --forward refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.agentproc import REPO, Agent

DEV = "70b3d57ed0000101"
ROOM = {"dev_eui": DEV, "name": "room 1", "class": "co2", "dev_addr": "260c0001",
        "nwk_s_key": "00" * 16, "app_s_key": "11" * 16}  # fmt: skip


def cli(agent: Agent, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(agent.config_path), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def csv_file(path: Path, n: int, eui: str = DEV) -> Path:
    rows = [f"{eui},2026-01-05T{9 + i // 4:02d}:{(i % 4) * 15:02d}:00Z,{800 + i}" for i in range(n)]
    path.write_text("devEui,time,co2_ppm\n" + "\n".join(rows) + "\n")
    return path


def test_import_offline_then_online(tmp_path: Path) -> None:
    # Retention (7 days by default) deletes readings stamped before it at the daemon's start,
    # imported history included: this site keeps ten years.
    agent = Agent(tmp_path / "agent", None, [ROOM], {"store": {"retention_days": 1}})
    agent.start()  # creates the database and the device
    assert agent.stop() == 0
    f = csv_file(tmp_path / "old.csv", 8)
    r = cli(agent, "readings", "import", str(f), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["new"] == 8
    r = cli(agent, "readings", "import", str(f), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["rows"], out["new"], out["present"], out["devices"]) == (8, 8, 0, 1)
    assert "retention" not in r.stderr
    r = cli(agent, "readings", "show", "--json")
    shown = json.loads(r.stdout)
    assert len(shown) == 8 and {x["origin"] for x in shown} == {"import"}

    agent.start()
    try:
        g = csv_file(tmp_path / "more.csv", 12)  # the same 8 and 4 more
        r = cli(agent, "readings", "import", str(g))
        assert r.returncode == 0, r.stderr
        assert "imported 12 readings: 4 new, 8 already present; 1 device(s)" in r.stdout
        assert "2026-01-05T09:00:00Z .. 2026-01-05T11:45:00Z" in r.stdout
        assert len(agent.ask("readings", limit=100)) == 12
        assert agent.ask("outbox")["depth"] == 0
        bad = csv_file(tmp_path / "stranger.csv", 2, "70b3d57ed0000999")
        r = cli(agent, "readings", "import", str(bad))
        assert r.returncode == 1 and "70b3d57ed0000999" in r.stderr and "Traceback" not in r.stderr
        assert len(agent.ask("readings", limit=100)) == 12
    finally:
        assert agent.stop() == 0


def test_bad_files_and_forward(tmp_path: Path) -> None:
    agent = Agent(tmp_path / "agent", None, [ROOM])
    agent.start()
    assert agent.stop() == 0
    lines = [
        f'{{"devEui": "{DEV}", "time": "2026-01-05T10:00:00Z", "measurements": {{"co2_ppm": 1}}}}'
    ]
    lines += ['{"devEui": "xyz", "time": 1767607200, "measurements": {"co2_ppm": 1}}'] * 25
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    r = cli(agent, "readings", "import", str(bad))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "line 2: devEui" in r.stderr and "line 21:" in r.stderr and "line 22:" not in r.stderr
    assert "... and 5 more" in r.stderr and "25 problem(s), nothing imported" in r.stderr
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"devEui,time,co2_ppm\n" + DEV.encode() + b",1767607200,\xff\n")
    r = cli(agent, "readings", "import", str(binary))
    assert (
        r.returncode == 1 and f"offset {20 + 16 + 12}" in r.stderr and "Traceback" not in r.stderr
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = cli(agent, "readings", "import", str(empty))
    assert r.returncode == 1 and "no readings" in r.stderr and "Traceback" not in r.stderr
    good = csv_file(tmp_path / "ok.csv", 2)
    r = cli(agent, "readings", "import", str(good), "--forward")
    assert r.returncode == 2 and "--forward" in r.stderr
    r = cli(agent, "readings", "show", "--json")
    assert json.loads(r.stdout) == []
    r = cli(agent, "readings", "import", str(good))
    assert r.returncode == 0 and "imported 2 readings: 2 new" in r.stdout
    assert "retention" not in r.stderr  # imported history is not subject to retention


def test_large_files_go_in_requests_under_the_socket_limit() -> None:
    from gateway_agent.cli.readings import _chunks
    from gateway_agent.control import MAX_REQUEST
    from gateway_agent.reports.importer import parse_import

    text = "\n".join(
        f'{{"devEui": "{DEV}", "time": {1767607200 + i}, "measurements": {{"co2_ppm": {i}.5, "temp_c": 21.25}}}}'
        for i in range(30_000)
    )
    chunks = _chunks(parse_import(text))
    assert len(chunks) > 1 and sum(map(len, chunks)) == 30_000
    assert all(len(json.dumps({"cmd": "readings_import", "rows": c})) < MAX_REQUEST for c in chunks)
