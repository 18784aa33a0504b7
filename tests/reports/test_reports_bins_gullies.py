"""Bins (a bin emptied at 40 % twice) and gullies (a baseline creeping up) on January 2026."""

from __future__ import annotations

import math

import pytest

from gateway_agent.reports import month_period, run_report
from tests.reports_kit import device, eui, every, make_db, ts

JAN = month_period("2026-01")
# (collection time, fill on the last reading before it); the fill falls to 5 % at each.
COLLECTIONS = [
    (ts(2026, 1, 7, 10), 85.0),
    (ts(2026, 1, 10, 10), 40.0),
    (ts(2026, 1, 17, 10), 85.0),
    (ts(2026, 1, 20, 10), 40.0),
    (ts(2026, 1, 28, 10), 99.0),
]


def _fill(t: float) -> float:
    prev = JAN.start
    for when, before in COLLECTIONS:
        if t < when:
            return round(5 + (before - 5) * (t - prev) / (when - 3600 - prev), 3)
        prev = when
    return 5.0


def _bin_rows():
    for t in every(JAN.start, JAN.end, 3600):
        yield eui(1), t, {"fill_pct": _fill(t), "distance_mm": 900}
        yield eui(2), t, {"fill_pct": 30.0}  # never collected, never full


@pytest.fixture(scope="module")
def bins(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("bins") / "agent.db"
    make_db(
        db,
        [device(1, "bin", "High St 1"), device(2, "bin", "High St 2"), device(3, "bin", "Quiet")],
        _bin_rows(),
    )
    return run_report(db, "bins", JAN)


def test_bin_emptied_at_40_twice(bins: dict) -> None:
    d = bins["devices"][0]
    assert [c["fill_pct"] for c in d["collections"]] == [85.0, 40.0, 85.0, 40.0, 99.0]
    assert [c["time"] for c in d["collections"]][1] == "2026-01-10T10:00:00Z"
    assert d["wasted_collections"] == 2
    assert d["verdict"] == "fail"
    assert d["reasons"] == ["overflowing", "wasted_collections"]
    # 99 % reached at 09:00 on the 28th from 5 % at 10:00 on the 20th: above 95 % for the last
    # 8 readings (95.0 is not above) -> 8 hours.
    assert d["hours_above_overflow"] == pytest.approx(8.0, abs=1.01)
    assert d["current_interval_days"] == 5.2
    assert d["fill_rate_pct_per_day"] == pytest.approx(
        (35 + 80 + 35 + 94) / 21.0, rel=0.01
    )  # 4 whole cycles
    rate = d["fill_rate_pct_per_day"]
    assert d["suggested_interval_days"] == round((85 - 5) / rate * 2) / 2
    assert bins["value"]["wasted_collections"] == 2


def test_other_bins(bins: dict) -> None:
    assert bins["devices"][1]["verdict"] == "pass"
    assert bins["devices"][1]["collections_count"] == 0
    assert bins["devices"][2]["verdict"] == "insufficient_data"


def _level(t: float, base0: float, creep_mm_day: float, storm: bool) -> float:
    day = (t - JAN.start) / 86400
    level = base0 + creep_mm_day * day + 3 * math.sin(2 * math.pi * day)
    s0 = ts(2026, 1, 15, 14)
    if storm and s0 <= t < s0 + 4 * 3600:
        k = (t - s0) / 3600
        level += 340 * min(1.0, k / 0.75) if k < 2 else 340 * max(0.0, 1 - (k - 2) / 2)
    return round(level, 1)


@pytest.fixture(scope="module")
def gullies(tmp_path_factory: pytest.TempPathFactory) -> dict:
    db = tmp_path_factory.mktemp("gul") / "agent.db"
    rows = []
    for t in every(JAN.start, JAN.end, 900):
        rows.append((eui(1), t, {"level_mm": _level(t, 50, 2.0, True)}))
        rows.append((eui(2), t, {"level_mm": _level(t, 40, 0.0, False)}))
    devs = [device(1, "gully", "Mill Lane", warning_level_mm=300), device(2, "gully", "Bridge St")]
    make_db(db, devs, rows)
    return run_report(db, "gullies", JAN)


def test_gully_baseline_creeps_up(gullies: dict) -> None:
    d = gullies["devices"][0]
    assert d["verdict"] == "fail"
    assert d["silt_suspected"] is True
    assert d["baseline_slope_mm_per_30d"] == pytest.approx(60.0, abs=3)
    assert d["reasons"] == ["above_warning", "silt_suspected", "rate_of_rise"]
    assert d["rise_events_count"] == 1
    assert d["rise_events"][0]["time"].startswith("2026-01-15T14:")
    assert d["peak_time"].startswith("2026-01-15T1")
    assert d["peak_mm"] > 400
    assert 60 <= d["minutes_above_warning"] <= 180


def test_flat_gully_passes(gullies: dict) -> None:
    d = gullies["devices"][1]
    assert d["verdict"] == "pass", d["reasons"]
    assert d["silt_suspected"] is False and d["rise_events_count"] == 0
    assert d["warning_level_mm"] == 300.0  # the [reports.gullies] default
