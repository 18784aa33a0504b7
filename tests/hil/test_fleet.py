"""#17 must-show 4: the `fleet` scenario. Three real agents behind their own loopback backhauls
to one real mosquitto relay every frame of 300 ABP devices (heard by 1-3 gateways each) as
`chirpstack_api.gw.UplinkFrame`; one backhaul is cut for a simulated hour. Plus the backhaul
proxy and the `[fleet_run]` table on their own."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from hil.broker import Mosquitto
from hil.fleetrun import FleetSpec, check_spec, fleet_spec, run_fleet
from hil.proxy import TcpProxy
from hil.scenario import ScenarioError, read_scenario


@pytest.mark.slow
async def test_fleet_scenario(tmp_path: Path) -> None:
    scn = read_scenario("fleet")
    spec = fleet_spec("fleet")
    assert spec is not None and scn.devices == 300 and len(scn.gateways) == 3
    r = await run_fleet(scn, spec, tmp_path)
    (tmp_path / "report.json").write_text(json.dumps(r, indent=1, default=str))
    assert r["relay_built"], "this tree has gateway_agent/relay"
    assert r["verdict"] == "pass", [k for k, ok in r["checks"].items() if not ok]
    # Overlap is real: devices heard by one, two and three gateways; copies merged by id.
    cov = r["devices_heard_by_gateways"]
    assert cov["0"] == 0 and cov["1"] > 0 and cov["2"] > 0 and cov["3"] > 0, cov
    m = r["merge"]
    assert m["missing"] == 0 and m["unknown"] == 0, m["missing_ids"]
    assert m["unique_ids"] == r["reached_an_agent"] > 2000
    assert m["by_agents"].get("2", 0) > 0 and m["by_agents"].get("3", 0) > 0
    assert m["measurement_mismatches"] == 0
    # Per gateway: every frame heard reached the central, from that gateway's EUI.
    for g in r["gateways"]:
        assert g["heard"] > 0 and g["relayed"] == g["heard"] and g["relay_missing"] == 0, g
        assert g["relay_foreign"] == 0 and g["readings_missing"] == 0, g
    cut = r["gateways"][spec.cut_gateway]
    assert cut["proxy"]["aborted"] >= 1 and cut["proxy"]["refused"] >= 1  # really cut
    assert r["cut"]["mode"] == "blackhole" and cut["proxy"]["lost_bytes"] > 0  # silently
    assert cut["heard_during_cut"] > 300  # a third of the run's frames waited on the gateway
    assert cut["out_of_order"] == 0 and cut["redelivered"] <= spec.redelivery_max
    assert cut["counters"].get("relay_connects", 0) >= 2
    others = [g for i, g in enumerate(r["gateways"]) if i != spec.cut_gateway]
    assert all(g["redelivered"] == 0 for g in others)
    assert r["cut"]["relay_drain_s"] is not None and r["cut"]["readings_drain_s"] is not None
    c = r["central"]
    assert c["uplinks"] == c["uplinks_heard"] and c["missing"] == 0 and c["decode_errors"] == 0
    assert c["cut_gateway_offline_online"], c["cut_gateway_states"]
    assert r["passive"] and all(g["downlinks"] == 0 for g in r["gateways"])


def _write(tmp_path: Path, table: str) -> str:
    p = tmp_path / "s.toml"
    p.write_text(
        'name = "s"\nduration_s = 100\naccel = 10\n'
        '[[gateways]]\neui = "b827ebfffe000001"\n[[gateways]]\neui = "b827ebfffe000002"\n'
        '[[fleet]]\nclass = "co2"\ncount = 2\n' + table
    )
    return str(p)


def test_fleet_run_table(tmp_path: Path) -> None:
    assert fleet_spec("outage") is None  # a single-agent scenario
    spec = fleet_spec(_write(tmp_path, "[fleet_run]\ncut_at_s = 10\ncut_duration_s = 50\n"))
    assert spec == FleetSpec(cut_at_s=10, cut_duration_s=50)
    check_spec(read_scenario(str(tmp_path / "s.toml")), spec)
    with pytest.raises(ScenarioError, match="fleet_run.cut_gap_s: unknown key"):
        fleet_spec(_write(tmp_path, "[fleet_run]\ncut_gap_s = 1\n"))
    with pytest.raises(ScenarioError, match="fleet_run.cut_at_s"):
        fleet_spec(_write(tmp_path, '[fleet_run]\ncut_at_s = "soon"\n'))
    late = fleet_spec(_write(tmp_path, "[fleet_run]\ncut_at_s = 60\ncut_duration_s = 50\n"))
    assert late is not None
    with pytest.raises(ScenarioError, match="the cut must end before duration_s"):
        check_spec(read_scenario(str(tmp_path / "s.toml")), late)
    with pytest.raises(ScenarioError, match="cut_gateway"):
        check_spec(read_scenario(str(tmp_path / "s.toml")), FleetSpec(cut_gateway=2))


def test_hil_cli_refuses_a_fleet_run_it_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hil.__main__ import main

    path = _write(tmp_path, "[fleet_run]\ncut_at_s = 60\ncut_duration_s = 50\n")
    assert main(["run", path]) == 2
    assert "the cut must end before duration_s" in capsys.readouterr().err
    assert main(["run", _write(tmp_path, '[fleet_run]\ncut_mode = "cable"\n')]) == 2
    assert "fleet_run.cut_mode" in capsys.readouterr().err


def _exchange(port: int, data: bytes) -> bytes:
    """The first reply to `data` on a new connection; b"" when it is dropped (EOF or reset)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        try:
            s.sendall(data)
            return s.recv(100)
        except ConnectionError:
            return b""


def _dropped(s: socket.socket) -> bool:
    try:
        return s.recv(4) == b""
    except ConnectionError:
        return True


async def test_backhaul_proxy_cut_and_restore(tmp_path: Path) -> None:
    """A real mosquitto behind the proxy: CONNECT/CONNACK pass; a cut drops the live connection
    and refuses new ones; restored, it carries again."""
    connect = bytes.fromhex("101000044d5154540402003c0004") + b"hil1"  # MQTT 3.1.1 CONNECT
    with Mosquitto(workdir=tmp_path / "mq") as broker:
        proxy = TcpProxy(broker.port).start()
        try:
            assert (await asyncio.to_thread(_exchange, proxy.port, connect))[:1] == b"\x20"
            live = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
            live.sendall(connect)
            assert live.recv(4)[:1] == b"\x20"
            proxy.cut()
            assert _dropped(live)
            live.close()
            assert await asyncio.to_thread(_exchange, proxy.port, connect) == b""  # refused
            assert proxy.stats.aborted >= 1 and proxy.stats.refused == 1
            proxy.restore()
            assert (await asyncio.to_thread(_exchange, proxy.port, connect))[:1] == b"\x20"
            assert proxy.stats.connections == 3 and proxy.stats.cuts == 1
        finally:
            proxy.close()


async def test_backhaul_proxy_blackhole(tmp_path: Path) -> None:
    """The silent 4G link: bytes vanish both ways, new connections hear nothing; restored, the
    connections of the outage are reset and a new one carries again."""
    connect = bytes.fromhex("101000044d5154540402003c0004") + b"hil2"
    ping = b"\xc0\x00"  # PINGREQ: answered with PINGRESP d0 00 on a live link
    with Mosquitto(workdir=tmp_path / "mq") as broker:
        proxy = TcpProxy(broker.port).start()
        try:
            live = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
            live.sendall(connect)
            assert live.recv(4)[:1] == b"\x20"
            proxy.cut(blackhole=True)
            live.settimeout(0.5)
            live.sendall(ping)
            with pytest.raises(TimeoutError):
                live.recv(2)  # no PINGRESP, no reset either
            late = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
            late.settimeout(0.5)
            late.sendall(connect)
            with pytest.raises(TimeoutError):
                late.recv(4)  # accepted, then silence: no CONNACK
            assert proxy.stats.lost_bytes >= len(ping) + len(connect)
            proxy.restore()
            for s in (live, late):
                assert _dropped(s)
                s.close()
            assert (await asyncio.to_thread(_exchange, proxy.port, connect))[:1] == b"\x20"
            assert proxy.stats.refused == 1 and proxy.stats.aborted >= 2
        finally:
            proxy.close()


def _report() -> dict:
    gw = {
        "readings_missing": 0,
        "readings_unexpected": 0,
        "relay_missing": 0,
        "relay_foreign": 0,
        "redelivered": 0,
        "out_of_order": 0,
        "drain_s": 1.0,
        "heard_during_cut": 10,
        "proxy": {"aborted": 1, "cuts": 1},
        "downlinks": 0,
    }
    return {
        "reached_an_agent": 30,
        "merge": {"missing": 0, "unknown": 0, "measurement_mismatches": 0, "bad_messages": 0},
        "gateways": [dict(gw), dict(gw), dict(gw)],
        "central": {
            "consumed": True,
            "missing": 0,
            "decode_errors": 0,
            "gateway_id_mismatch": 0,
            "no_rx_info": 0,
            "cut_gateway_offline_online": True,
        },
    }


def test_fleet_verdicts_fail_on_each_fault() -> None:
    """Each verdict turns on what it claims: one frame missing, one inversion, one copy too many."""
    from hil.fleetreport import verdicts

    spec = FleetSpec(cut_gateway=1, redelivery_max=2)
    assert all(verdicts(_report(), spec).values())

    def failing(**change: object) -> list[str]:
        r = _report()
        for path, v in change.items():
            *keys, last = path.split("__")
            node = r
            for k in keys:
                node = node[int(k)] if k.isdigit() else node[k]
            node[last] = v
        return [k for k, ok in verdicts(r, spec).items() if not ok]

    assert failing(merge__missing=1) == [
        "every uplink once in the merge by id (none missing, none unknown)"
    ]
    assert failing(gateways__1__relay_missing=1) == [
        "per gateway: every frame heard reached the central (heard == relayed)"
    ]
    assert failing(gateways__1__out_of_order=1) == [
        "the cut agent's frames arrived in the order heard"
    ]
    assert failing(gateways__1__drain_s=None) == [
        "the cut agent's frames arrived in the order heard"
    ]
    assert failing(gateways__1__redelivered=2) == []  # within one PUBACK window
    assert failing(gateways__1__redelivered=3) == [
        "no frame relayed twice beyond at-least-once redelivery"
    ]
    assert failing(gateways__0__redelivered=1) == [
        "no frame relayed twice beyond at-least-once redelivery"
    ]
    assert failing(gateways__2__readings_missing=1) == [
        "each agent published a reading for every frame its gateway heard"
    ]
    assert failing(gateways__1__heard_during_cut=0) == [
        "the backhaul was really cut (link dropped, frames heard meanwhile)"
    ]
    assert failing(passive=True) == []
    assert failing(passive=True, gateways__0__downlinks=1) == [
        "passive: no agent sent a downlink of its own (the central owns them)"
    ]
    assert failing(central__cut_gateway_offline_online=False) == [
        "the central saw the cut gateway go OFFLINE (last will) and come back ONLINE"
    ]
    r = _report()
    r["central"] = {"consumed": False}
    bad = [k for k, ok in verdicts(r, spec).items() if not ok]
    assert len(bad) == 5 and all(k.endswith("[relay not built in this tree]") for k in bad)
