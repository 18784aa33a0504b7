"""The CI scenarios end to end: the real daemon, a real mosquitto, real UDP and pty traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.runner import run_scenario
from hil.scenario import read_scenario


async def _run(name: str, tmp_path: Path) -> dict:
    report = await run_scenario(read_scenario(name), tmp_path)
    assert report["lost"] == 0 and report["lost_accepted"] == 0, report["lost_ids"]
    assert report["forged_accepted"] == 0, report["forged_ids"]
    assert report["measurement_mismatches"] == 0, report["mismatch_ids"]
    assert report["accepted"] > 0.9 * report["forwarded"]
    assert report["verdict"] == "pass", report["checks"]
    # ADR: the simulated stacks obey every LinkADRReq the agent sends.
    c = report["agent_counters"]
    assert not {k for k in c if k.startswith("adr_outcome") and "accepted" not in k}, c
    return report


@pytest.mark.slow
async def test_outage(tmp_path: Path) -> None:
    r = await _run("outage", tmp_path)
    assert r["agent_counters"].get("upstream_connects", 0) >= 2  # it really lost the broker
    assert r["latency_ms"]["max"] > 1000  # readings of the outage waited in the store


@pytest.mark.slow
async def test_crash_restart(tmp_path: Path) -> None:
    r = await _run("crash_restart", tmp_path)
    assert r["daemon_starts"] == 2


@pytest.mark.slow
async def test_otaa_fleet(tmp_path: Path) -> None:
    r = await _run("otaa_fleet", tmp_path)
    assert r["devices_stats"]["joined"] == r["devices"]
    assert r["devices_stats"]["acks"] > 0 and r["devices_stats"]["bad_downlinks"] == 0


@pytest.mark.slow
async def test_multi_gateway(tmp_path: Path) -> None:
    r = await _run("multi_gateway", tmp_path)
    assert r["duplicated"] == 0  # three gateways and a modem, one reading each
    assert r["agent_counters"].get("frames_duplicate", 0) >= 2 * r["accepted"]
    assert r["modems"][0]["delivered"] > 0
    asked = r["agent_counters"].get("mac_answered{command=LinkADRReq}", 0)
    assert asked > 0, "devices heard with a margin were asked to speed up or save power"
    assert r["devices_stats"]["adr_changes"] > 0
    assert r["agent_counters"].get("adr_outcome{outcome=accepted}", 0) >= asked - r["devices"]


@pytest.mark.slow
async def test_attack(tmp_path: Path) -> None:
    r = await _run("attack", tmp_path)
    c = r["agent_counters"]
    assert r["duplicated"] == 0
    assert c.get("bad_input{reason=mic}", 0) > 0 and c.get("bad_input{reason=replay}", 0) > 0
