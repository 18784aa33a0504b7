"""Reports: settings, renderers, source edge cases, importer, and properties."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from gateway_agent.errors import ConfigError
from gateway_agent.reports import (
    KINDS,
    ReportSettings,
    build_report,
    load_report_settings,
    month_period,
    render_csv,
    render_html,
    render_json,
    run_report,
)
from gateway_agent.reports.importer import ImportFileError, parse_import
from gateway_agent.reports.report import Selector
from gateway_agent.reports.source import open_readonly, stream_rows
from tests.reports_kit import device, eui, every, make_db, ts

JAN = month_period("2026-01")
CLASS = {"legionella": "legionella", "co2": "co2", "bins": "bin", "gullies": "gully"}
SETTINGS = {"legionella": {"outlet": "hot"}, "co2": {}, "bins": {}, "gullies": {}}
FIELD = {"legionella": "temperature_c", "co2": "co2_ppm", "bins": "fill_pct", "gullies": "level_mm"}


# --------------------------------------------------------------------------- settings


def test_settings_defaults_and_errors() -> None:
    s = load_report_settings({})
    assert s == ReportSettings()
    assert s.co2.start_min == 540 and s.co2.end_min == 930 and s.co2.weekdays == (0, 1, 2, 3, 4)
    assert s.legionella.hot_min_c == 50 and s.legionella.hot_min_healthcare_c == 55
    for table, path in [
        ({"co2": {"strat": "09:00"}}, "reports.co2.strat"),
        ({"co2": {"start": "9am"}}, "reports.co2.start"),
        ({"co2": {"start": "10:00", "end": "09:00"}}, "reports.co2.end"),
        ({"co2": {"holidays": ["2026-02-20..2026-02-16"]}}, "reports.co2.holidays[0]"),
        ({"co2": {"weekdays": ["mon", "fry"]}}, "reports.co2.weekdays[1]"),
        (
            {"co2": {"criteria": {"natural": {"peak_ppm": "high"}}}},
            "reports.co2.criteria.natural.peak_ppm",
        ),
        (
            {"legionella": {"value": {"minutes_per_check": -1}}},
            "reports.legionella.value.minutes_per_check",
        ),
        ({"bins": {"overflow_pct": 120}}, "reports.bins.overflow_pct"),
        ({"timezone": "Mars/Olympus"}, "reports.timezone"),
        ({"colour": 1}, "reports.colour"),
    ]:
        with pytest.raises(ConfigError) as e:
            load_report_settings(table)
        assert e.value.key_path == path


def test_device_setting_error_names_the_device(tmp_path: Path) -> None:
    db = make_db(tmp_path / "a.db", [device(1, "legionella", outlet="warm")], [])
    with pytest.raises(ConfigError) as e:
        run_report(db, "legionella", JAN)
    assert e.value.key_path == f"devices[{eui(1).hex()}].settings.outlet"


# --------------------------------------------------------------------------- renderers


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = {}
    for kind in KINDS:
        db = tmp_path_factory.mktemp(kind) / "agent.db"
        devs = [device(i, CLASS[kind], f"<{kind} & {i}>", **SETTINGS[kind]) for i in (1, 2)]
        rows = [
            (eui(1), t, {FIELD[kind]: 40 + 30 * math.sin(t / 7000)})
            for t in every(JAN.start, JAN.end, 1800)
        ]
        make_db(db, devs, rows)
        out[kind] = run_report(db, kind, JAN)
    return out


@pytest.mark.parametrize("kind", list(KINDS))
def test_html_is_self_contained(reports: dict[str, dict], kind: str) -> None:
    html = render_html(reports[kind], generated_at="2026-02-01T08:00:00Z", site="Fife PS 017")
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", html)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert "@page" in html and "<svg" in html
    assert "&lt;" in html and f"<{kind} &" not in html  # names are escaped


@pytest.mark.parametrize("kind", list(KINDS))
def test_csv_and_json(reports: dict[str, dict], kind: str) -> None:
    rep = reports[kind]
    rows = list(csv.DictReader(io.StringIO(render_csv(rep))))
    assert len(rows) == 2
    assert [r["dev_eui"] for r in rows] == [eui(1).hex(), eui(2).hex()]
    assert all(
        r["kind"] == kind and r["from"] == "2026-01-01" and r["to"] == "2026-01-31" for r in rows
    )
    assert rows[1]["verdict"] == "insufficient_data"
    back = json.loads(render_json(rep))
    assert back == json.loads(json.dumps(rep))
    for d in back["devices"]:
        assert {"dev_eui", "name", "verdict"} <= set(d)
        assert not any(k.startswith("_") for k in d)


def test_path_and_connection_give_the_same_report(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "a.db", [device(1, "co2")], [(eui(1), ts(2026, 1, 6, 10), {"co2_ppm": 900})]
    )
    conn = open_readonly(db)
    try:
        assert run_report(conn, "co2", JAN) == run_report(db, "co2", JAN)
    finally:
        conn.close()


def test_selector(tmp_path: Path) -> None:
    devs = [
        device(1, "co2", tags=("school-1",)),
        device(2, "co2", tags=("school-2",)),
        device(3, "bin"),
    ]
    db = make_db(tmp_path / "a.db", devs, [])
    names = lambda r: [d["dev_eui"] for d in r["devices"]]  # noqa: E731
    assert names(run_report(db, "co2", JAN, Selector(tags=("school-2",)))) == [eui(2).hex()]
    assert names(run_report(db, "co2", JAN, Selector(dev_euis=(eui(3),)))) == [eui(3).hex()]
    assert len(run_report(db, "co2", JAN, Selector(any_class=True))["devices"]) == 3
    with pytest.raises(ConfigError):
        run_report(db, "noise", JAN)


def test_unparseable_json_row_falls_back(tmp_path: Path) -> None:
    """Python writes NaN, which SQLite's JSON parser refuses: the stream carries on."""
    rows = [(eui(1), ts(2026, 1, 5, 9, m), {"co2_ppm": 500 + m}) for m in range(0, 60, 5)]
    db = make_db(tmp_path / "a.db", [device(1, "co2")], rows)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE readings SET measurements='{\"co2_ppm\": NaN}' WHERE fcnt=4")
    conn = open_readonly(db)
    got = list(stream_rows(conn, eui(1), ("co2_ppm",), JAN.start, JAN.end, chunk=2))
    conn.close()
    assert [v[0] for _, v in got] == [500 + m for m in range(0, 60, 5) if m != 15]


# --------------------------------------------------------------------------- importer


def test_import_jsonl_and_csv() -> None:
    rows = parse_import(
        '{"devEui": "70B3D57ED0000001", "time": "2026-01-05T10:00:00Z", "measurements": {"co2_ppm": 812}}\n'
        '{"devEui": "70-b3-d5-7e-d0-00-00-01", "time": 1767607500, "measurements": {"co2_ppm": 820.5}}\n'
    )
    assert [r.time for r in rows] == [ts(2026, 1, 5, 10), 1767607500.0]
    assert rows[0].dev_eui == eui(1) and rows[1].measurements == {"co2_ppm": 820.5}
    wide = parse_import(
        "devEui,time,co2_ppm,temperature_c\n70b3d57ed0000001,2026-01-05T10:00:00+00:00,812,\n"
    )
    assert wide[0].measurements == {"co2_ppm": 812.0}
    packed = parse_import(
        'devEui,time,measurements\n70b3d57ed0000001,2026-01-05T10:00:00Z,"{""fill_pct"": 40}"\n'
    )
    assert packed[0].measurements == {"fill_pct": 40.0}


def test_import_reports_every_problem_and_imports_nothing() -> None:
    text = (
        '{"devEui": "70b3d57ed0000001", "time": "2026-01-05T10:00:00Z", "measurements": {"co2_ppm": 1}}\n'
        '{"devEui": "70b3d57e", "time": "2026-01-05T10:00:00Z", "measurements": {"co2_ppm": 1}}\n'
        '{"devEui": "70b3d57ed0000001", "time": "2026-01-05T10:00:00", "measurements": {"co2_ppm": 1}}\n'
        "not json\n"
        '{"devEui": "70b3d57ed0000001", "time": "2026-01-05T10:00:00Z", "measurements": {"co2_ppm": 2}}\n'
        '{"devEui": "70b3d57ed0000001", "time": "2026-01-05T11:00:00Z", "measurements": {"CO2": true}}\n'
    )
    with pytest.raises(ImportFileError) as e:
        parse_import(text)
    lines = [n for n, _ in e.value.problems]
    assert lines == [2, 3, 4, 5, 6]
    assert "devEui" in e.value.problems[0][1] and "offset" in e.value.problems[1][1]
    assert "line 1" in e.value.problems[3][1]  # duplicate of line 1
    assert e.value.reason == "import_file"


# --------------------------------------------------------------------------- properties

_value = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
)


@pytest.mark.parametrize("kind", list(KINDS))
@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.lists(st.tuples(st.floats(-2 * 86400, 33 * 86400), _value, _value), max_size=60))
def test_never_crashes_on_arbitrary_rows(kind: str, data: list) -> None:
    rows = sorted(((JAN.start + t, (a, b)) for t, a, b in data), key=lambda r: r[0])
    dev = (
        device(1, CLASS[kind], outlet="calorifier")
        if kind == "legionella"
        else device(1, CLASS[kind])
    )
    rep = build_report(
        kind, JAN, [dev], lambda d, f: ((t, v[: len(f)]) for t, v in rows), ReportSettings()
    )
    assert rep["devices"][0]["verdict"] in ("pass", "fail", "insufficient_data")
    json.dumps(rep, allow_nan=False)
    render_csv(rep)
    render_html(rep)


@pytest.mark.parametrize("kind", list(KINDS))
def test_no_rows_is_insufficient_data(kind: str) -> None:
    dev = device(1, CLASS[kind], **SETTINGS[kind])
    rep = build_report(kind, JAN, [dev], lambda d, f: iter(()), ReportSettings())
    assert rep["devices"][0]["verdict"] == "insufficient_data"
    assert rep["value"]["devices_monitored"] == 0 and rep["value"]["problems_found"] == 0


def test_import_huge_number_or_deep_nesting_is_a_line_problem() -> None:
    from gateway_agent.reports.importer import ImportFileError, parse_import

    text = (
        '{"devEui": "70b3d57ed0000001", "time": ' + "9" * 5000 + ', "measurements": {}}\n'
        + "[" * 100_000 + "\n"
    )  # fmt: skip
    with pytest.raises(ImportFileError) as e:
        parse_import(text, "jsonl")
    assert [line for line, _ in e.value.problems] == [1, 2]
