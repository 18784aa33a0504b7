"""Classroom air on a hand-built January 2026: one room over 2,000 ppm for 25 minutes on
Tuesday 13 Jan; a mechanically ventilated room over 1,500 ppm for 25 minutes on Thursday 22."""

from __future__ import annotations

import pytest

from gateway_agent.reports import month_period, run_report
from gateway_agent.reports.settings import load_report_settings
from tests.reports_kit import device, eui, every, make_db, ts

JAN = month_period("2026-01")


def _rows():
    for t in every(JAN.start, JAN.end, 300):
        spike13 = ts(2026, 1, 13, 10) <= t < ts(2026, 1, 13, 10, 25)
        spike22 = ts(2026, 1, 22, 11) <= t < ts(2026, 1, 22, 11, 25)
        yield eui(1), t, {"co2_ppm": 2100 if spike13 else 800, "temperature_c": 20.5}
        yield eui(2), t, {"co2_ppm": 1600 if spike22 else 700}
        yield eui(3), t, {"co2_ppm": 900}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("co2") / "agent.db"
    devs = [
        device(1, "co2", "P7 classroom"),
        device(2, "co2", "Science lab", ventilation="mechanical"),
        device(3, "co2", "Library", ventilation="hybrid"),
        device(4, "co2", "Hall (no data)"),
    ]
    make_db(db, devs, _rows())
    settings = load_report_settings({"co2": {"holidays": ["2026-01-01..2026-01-02"]}})
    return run_report(db, "co2", JAN, settings=settings)


def _dev(report: dict, n: int) -> dict:
    return next(d for d in report["devices"] if d["dev_eui"] == eui(n).hex())


def test_tuesday_spike_fails_bb101_natural(report: dict) -> None:
    d = _dev(report, 1)
    assert d["verdict"] == "fail" and d["reasons"] == ["peak_run"]
    assert d["school_days"] == 20  # 22 weekdays less 1-2 Jan
    assert (d["days_pass"], d["days_fail"], d["days_insufficient_data"]) == (19, 1, 0)
    assert d["worst_day"] == "2026-01-13"
    day = next(x for x in d["days"] if x["verdict"] == "fail")
    assert day["date"] == "2026-01-13"
    assert day["minutes_above_2000"] == 25.0
    assert day["longest_above_2000_min"] == 25.0
    assert day["longest_above_2000_from"] == "2026-01-13T10:00:00Z"
    assert day["minutes_above_1500"] == 25.0
    assert day["max_ppm"] == 2100.0
    assert day["mean_ppm"] == pytest.approx((25 * 2100 + 365 * 800) / 390, abs=0.05)
    assert day["coverage_pct"] == 100.0
    assert d["minutes_above_2000"] == 25.0
    assert d["first_problem"] == "2026-01-13T10:20:00Z"  # 20 minutes into the run


def test_mechanical_room_judged_at_1500(report: dict) -> None:
    d = _dev(report, 2)
    assert d["ventilation"] == "mechanical"
    assert d["criteria"] == {"mean_below_ppm": 1000.0, "peak_ppm": 1500.0, "peak_max_minutes": 20.0}
    assert d["verdict"] == "fail" and d["days_fail"] == 1
    assert d["worst_day"] == "2026-01-22"
    assert d["minutes_above_2000"] == 0.0 and d["longest_above_1500_min"] == 25.0


def test_passing_room_and_no_data(report: dict) -> None:
    assert _dev(report, 3)["verdict"] == "pass"
    assert _dev(report, 3)["mean_ppm"] == 900.0
    d = _dev(report, 4)
    assert d["verdict"] == "insufficient_data" and d["days_insufficient_data"] == 20


def test_worst_rooms_and_value(report: dict) -> None:
    assert [w["dev_eui"] for w in report["worst_rooms"]] == [eui(1).hex(), eui(2).hex()]
    v = report["value"]
    assert v["devices_monitored"] == 3
    assert v["problems_found"] == 2
    assert report["summary"] == {"devices": 4, "pass": 1, "fail": 2, "insufficient_data": 1}


def test_occupied_hours_only(tmp_path) -> None:
    """A spike after school and at the weekend does not count."""
    rows = [
        (eui(1), t, {"co2_ppm": 3000})
        for t in every(ts(2026, 1, 5, 15, 30), ts(2026, 1, 5, 18), 300)
    ]
    rows += [
        (eui(1), t, {"co2_ppm": 3000}) for t in every(ts(2026, 1, 10, 9), ts(2026, 1, 10, 15), 300)
    ]
    rows += [
        (eui(1), t, {"co2_ppm": 600}) for t in every(ts(2026, 1, 6, 9), ts(2026, 1, 6, 15, 30), 300)
    ]
    db = make_db(tmp_path / "a.db", [device(1, "co2")], sorted(rows, key=lambda r: r[1]))
    d = run_report(db, "co2", JAN)["devices"][0]
    assert d["verdict"] == "pass" and d["days_pass"] == 1 and d["max_ppm"] == 600.0
