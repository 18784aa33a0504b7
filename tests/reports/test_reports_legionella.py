"""Legionella log on a hand-built January 2026 (week 3 = 2026-W03, 12-18 Jan)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway_agent.reports import month_period, run_report
from gateway_agent.reports.report import Selector
from gateway_agent.reports.settings import load_report_settings
from tests.reports_kit import device, eui, every, make_db, ts

JAN = month_period("2026-01")


def _hot(t: float, peak: float, draw_hour: int = 10) -> float:
    """25 C standing; a draw at 10:00 brings the probe to `peak`, then it cools."""
    day0 = math.floor(t / 86400) * 86400
    since = t - (day0 + draw_hour * 3600)
    if 0 <= since < 3 * 3600:
        return 25 + (peak - 25) * math.exp(-since / 3600)
    return 25.0


def _rows():
    start, end = JAN.start, JAN.end
    for t in every(start, end, 900):
        week3 = ts(2026, 1, 12) <= t < ts(2026, 1, 19)
        yield eui(1), t, {"temperature_c": round(_hot(t, 45.0 if week3 else 58.0), 2)}
        # cold: 18 C standing, a daily draw brings 11 C
        day0 = math.floor(t / 86400) * 86400
        cold = 11.0 if day0 + 9 * 3600 <= t < day0 + 9 * 3600 + 900 else 18.0
        yield eui(2), t, {"temperature_c": cold}
        # little-used hot outlet: run on Mondays only, and not in week 4 (19-25 Jan)
        monday = (int(t // 86400) + 3) % 7 == 0
        week4 = ts(2026, 1, 19) <= t < ts(2026, 1, 26)
        yield (
            eui(3),
            t,
            {"temperature_c": round(_hot(t, 60.0), 2) if monday and not week4 else 22.0},
        )
        # healthcare hot outlet only reaches 52 C
        yield eui(4), t, {"temperature_c": round(_hot(t, 52.0), 2)}
        # calorifier with both probes, fine
        yield eui(6), t, {"temperature_c": 62.0, "temperature_2_c": 55.5}
        # cold outlet warming to 21 C once on 20 Jan 15:00
        hot_once = ts(2026, 1, 20, 15) <= t < ts(2026, 1, 20, 15, 15)
        yield eui(7), t, {"temperature_c": 21.0 if hot_once else 15.0, "battery_v": 3.6}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("leg") / "agent.db"
    devs = [
        device(1, "legionella", "Kitchen hot", outlet="hot"),
        device(2, "legionella", "Kitchen cold", outlet="cold"),
        device(3, "legionella", "Staff shower", outlet="hot", little_used=True),
        device(4, "legionella", "Ward 2 basin", ("care-home-3",), outlet="hot"),
        device(5, "legionella", "Silent probe", outlet="hot"),
        device(6, "legionella", "Calorifier 1", outlet="calorifier"),
        device(7, "legionella", "Cleaner cold", outlet="cold"),
        device(8, "co2", "Not an outlet"),
    ]
    make_db(db, devs, _rows())
    settings = load_report_settings({"legionella": {"healthcare_tags": ["care-home-3"]}})
    return run_report(db, "legionella", JAN, Selector(), settings)


def _dev(report: dict, n: int) -> dict:
    return next(d for d in report["devices"] if d["dev_eui"] == eui(n).hex())


def test_shape(report: dict) -> None:
    assert report["kind"] == "legionella"
    assert (report["from"], report["to"]) == ("2026-01-01", "2026-01-31")
    assert [d["dev_eui"] for d in report["devices"]] == [
        eui(n).hex() for n in (1, 2, 3, 4, 5, 6, 7)
    ]
    assert report["summary"] == {"devices": 7, "pass": 2, "fail": 4, "insufficient_data": 1}


def test_hot_outlet_fails_in_week_3_with_evidence(report: dict) -> None:
    d = _dev(report, 1)
    assert d["verdict"] == "fail"
    assert d["reasons"] == ["hot_not_reached"]
    verdicts = {w["week"]: w["verdict"] for w in d["weeks"]}
    assert verdicts == {"2026-W01": "pass", "2026-W02": "pass", "2026-W03": "fail",
                        "2026-W04": "pass", "2026-W05": "pass"}  # fmt: skip
    assert d["evidence"] == {
        "check": "hot",
        "week": "2026-W03",
        "value_c": 45.0,
        "time": "2026-01-12T10:00:00Z",
    }
    w1 = d["weeks"][0]["checks"][0]
    assert w1["evidence"] == {"value_c": 58.0, "time": "2026-01-01T10:00:00Z"}
    assert d["days_without_data"] == [] and d["days_with_data"] == 31
    assert d["flush_events"] == 31  # one draw a day


def test_cold_outlet_passes_and_flushes(report: dict) -> None:
    d = _dev(report, 2)
    assert d["verdict"] == "pass", d["reasons"]
    assert d["evidence"]["value_c"] == 18.0
    assert d["flush_events"] == 31


def test_little_used_outlet_without_weekly_flush(report: dict) -> None:
    d = _dev(report, 3)
    assert d["verdict"] == "fail"
    assert d["weeks_without_flush"] == ["2026-W01", "2026-W04"]  # 1-4 Jan has no Monday
    assert "no_weekly_flush" in d["reasons"]
    assert [w["flushes"] for w in d["weeks"]] == [0, 1, 1, 0, 1]


def test_healthcare_needs_55(report: dict) -> None:
    d = _dev(report, 4)
    assert d["healthcare"] is True
    assert d["checks"] == [{"check": "hot", "threshold_c": 55.0, "rule": "reach"}]
    assert d["verdict"] == "fail" and d["evidence"]["value_c"] == 52.0


def test_no_rows_is_insufficient_data(report: dict) -> None:
    d = _dev(report, 5)
    assert d["verdict"] == "insufficient_data"
    assert len(d["days_without_data"]) == 31


def test_calorifier_flow_and_return(report: dict) -> None:
    d = _dev(report, 6)
    assert d["verdict"] == "pass"
    assert [c["check"] for c in d["checks"]] == ["flow", "return"]
    assert {c["evidence"]["value_c"] for c in d["weeks"][0]["checks"]} == {62.0, 55.5}


def test_cold_breach_evidence_and_value(report: dict) -> None:
    d = _dev(report, 7)
    assert d["verdict"] == "fail"
    assert d["evidence"] == {
        "check": "cold",
        "week": "2026-W04",
        "value_c": 21.0,
        "time": "2026-01-20T15:00:00Z",
    }
    assert d["first_problem"] == "2026-01-20T15:00:00Z"
    v = report["value"]
    assert v["devices_monitored"] == 6
    assert v["manual_checks_replaced"] == round(6 * 1 * round(31 / 30.4375, 2), 1)
    early = {p["dev_eui"]: p for p in v["problems_found_earlier"]}
    assert early[eui(7).hex()]["next_visit"] == "2026-01-31T00:00:00Z"
    assert early[eui(7).hex()]["days_earlier"] == pytest.approx(10.4, abs=0.05)
    assert len(v["sums"]) == 4


def test_outlet_not_set(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "a.db",
        [device(1, "legionella")],
        [(eui(1), ts(2026, 1, 5), {"temperature_c": 50})],
    )
    r = run_report(db, "legionella", JAN)
    assert r["devices"][0]["verdict"] == "insufficient_data"
    assert r["devices"][0]["reasons"] == ["outlet_not_set"]
