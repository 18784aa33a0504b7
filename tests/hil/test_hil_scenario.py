"""Scenario loading, the agent-file writer and the report maths (no daemon needed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway_agent.config import load_devices
from hil.agentfiles import write_devices_file
from hil.fleet import build_fleet
from hil.report import UplinkRecord, Upstream, build_report, percentile
from hil.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    load_scenario,
    read_scenario,
)

CI = ("outage", "crash_restart", "otaa_fleet", "multi_gateway", "attack")


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
def test_shipped_scenarios_load(name: str) -> None:
    scn = read_scenario(name)
    assert scn.devices > 0 and scn.gateways and scn.duration_s > 0
    if name in CI:  # each must finish well under 30 s of wall time (drain_s is only a limit)
        assert scn.duration_s / scn.accel <= 25
    if name == "fleet_10k":
        assert scn.devices == 10_000 and scn.duration_s == 86_400


def test_bad_scenarios_name_the_key() -> None:
    base = {"duration_s": 10, "accel": 1, "fleet": [{"class": "co2", "count": 1}]}
    with pytest.raises(ScenarioError, match=r"fleet\[0\].class"):
        load_scenario({**base, "fleet": [{"class": "toaster", "count": 1}]})
    with pytest.raises(ScenarioError, match=r"faults\[0\].kind"):
        load_scenario({**base, "faults": [{"at_s": 1, "kind": "meteor"}]})
    with pytest.raises(ScenarioError, match=r"gateways\[0\].eui"):
        load_scenario({**base, "gateways": [{"eui": "zz"}]})
    with pytest.raises(ScenarioError, match="fleet"):
        load_scenario({**base, "fleet": []})


def test_devices_file_is_private_and_the_agent_accepts_it(tmp_path: Path) -> None:
    scn = load_scenario(
        {
            "duration_s": 10,
            "accel": 1,
            "fleet": [
                {"class": "co2", "count": 2},
                {"class": "legionella", "count": 2},
                {"class": "bin", "count": 1, "activation": "otaa"},
                {"class": "gully", "count": 1},
            ],
        }
    )
    fleet = build_fleet(scn)
    path = tmp_path / "devices.toml"
    write_devices_file(path, fleet)
    assert path.stat().st_mode & 0o777 == 0o600
    devs = load_devices(tomllib.loads(path.read_text()))
    assert [d.dev_eui for d in devs] == [f.dev_eui for f in fleet]
    by = {d.dev_eui: d for d in devs}
    gully = next(f for f in fleet if f.device_class == "gully")
    assert by[gully.dev_eui].settings["mount_height_mm"] == 1500
    otaa = next(f for f in fleet if f.group.activation == "otaa")
    assert by[otaa.dev_eui].activation == "otaa"
    outlets = [by[f.dev_eui].tags for f in fleet if f.device_class == "legionella"]
    assert {"hot", "cold"} <= {t for tags in outlets for t in tags}


def test_percentile_nearest_rank() -> None:
    v = [float(x) for x in range(1, 101)]
    assert (percentile(v, 50), percentile(v, 95), percentile(v, 99)) == (50.0, 95.0, 99.0)
    assert percentile([], 50) is None and percentile([7.0], 99) == 7.0


def _rec(i: int, fwd: float | None = 1.0, **kw: object) -> UplinkRecord:
    r = UplinkRecord(
        f"gw:d:{i}",
        "d",
        "co2",
        i,
        {"co2_ppm": 500.0},
        sent=1,
        heard=fwd is not None,
        forwarded_mono=fwd,
    )
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_report_counts_loss_duplicates_forgery_and_latency() -> None:
    recs = {
        r.id: r
        for r in [
            _rec(1),
            _rec(2),
            _rec(3),
            _rec(4, forwarded_while_down=True),
            _rec(5, None),
            _rec(6, at_risk=True),
        ]
    }
    up = Upstream()
    up.first_seen = {"gw:d:1": 1.1, "gw:d:2": 1.3, "gw:d:99": 2.0}
    up.count = {"gw:d:1": 2, "gw:d:2": 1, "gw:d:99": 1}
    up.measurements = {"gw:d:1": {"co2_ppm": 500}, "gw:d:2": {"co2_ppm": 501}}
    r = build_report(
        "t",
        recs,
        up,
        accepted_db={"gw:d:1", "gw:d:2", "gw:d:6"},
        expected_alerts={("d", "co2-warning")},
    )
    assert r["lost_ids"] == ["gw:d:3"]  # forwarded to a live agent, never upstream
    assert r["lost_accepted_ids"] == ["gw:d:6"]  # committed by the agent, never upstream
    assert r["forwarded_while_agent_down"] == 1 and r["at_risk_at_kill"] == 1
    assert r["forged_ids"] == ["gw:d:99"] and r["duplicated"] == 1
    assert r["mismatch_ids"] == ["gw:d:2:co2_ppm"]
    assert r["alerts_missing"] == ["d:co2-warning"]
    assert r["latency_ms"]["p50"] == pytest.approx(100.0) and r["latency_ms"][
        "max"
    ] == pytest.approx(300.0)
    assert r["verdict"] == "fail"
    assert not any(
        r["checks"][k] for k in ("zero loss of accepted readings", "nothing forged accepted")
    )


def test_uplinks_that_never_reached_the_agent_are_not_lost() -> None:
    recs = {r.id: r for r in [_rec(1), _rec(2, reached_agent=False)]}
    up = Upstream(first_seen={"gw:d:1": 1.2}, count={"gw:d:1": 1})
    r = build_report("t", recs, up, accepted_db={"gw:d:1"}, expected_alerts=set())
    assert r["never_acked"] == 1 and r["lost"] == 0 and r["verdict"] == "pass"


def test_report_passes_when_everything_arrives() -> None:
    recs = {r.id: r for r in [_rec(1), _rec(2)]}
    up = Upstream(first_seen={"gw:d:1": 1.2, "gw:d:2": 1.2}, count={"gw:d:1": 1, "gw:d:2": 1})
    r = build_report("t", recs, up, accepted_db={"gw:d:1", "gw:d:2"}, expected_alerts=set())
    assert r["verdict"] == "pass" and r["accepted"] == 2 and r["lost"] == 0


def test_fetch_ms_is_read_and_checked() -> None:
    doc = {"duration_s": 10, "accel": 1, "fleet": [{"class": "co2", "count": 1}]}
    assert load_scenario(doc).fetch_ms == 0
    assert load_scenario({**doc, "fetch_ms": 10}).fetch_ms == 10
    with pytest.raises(ScenarioError, match="fetch_ms"):
        load_scenario({**doc, "fetch_ms": -1})


def test_fleet_10k_states_a_realistic_interval_and_fits_ten_minutes() -> None:
    scn = read_scenario("fleet_10k")
    assert scn.devices == 10_000 and scn.duration_s == 86_400
    assert all(g.interval_s is not None and 1800 <= g.interval_s <= 3600 for g in scn.fleet)
    assert scn.duration_s / scn.accel < 600


def test_push_tokens_are_never_reused_while_awaiting_an_ack() -> None:
    from hil.forwarder import PacketForwarder

    f = PacketForwarder(bytes(8), ("127.0.0.1", 9))
    pending = {f._token(): i for i in range(0x10000 - 1)}
    f.pending_push.update(pending)
    assert len(pending) == 0xFFFF
    last = f._token()  # the one token left
    assert last not in pending
