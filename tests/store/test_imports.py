"""`Store.import_readings` (store/imports.py): history rows marked 'import', all or nothing,
idempotent, never in the outbox, device state untouched, and used by reports."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway_agent.errors import BadInput
from gateway_agent.reports.importer import parse_import
from gateway_agent.reports.request import run_request
from gateway_agent.reports.settings import ReportSettings
from gateway_agent.store import Batch, Store
from gateway_agent.store.imports import from_json, reading_id, to_json
from gateway_agent.store.migrations import MIGRATIONS, SCHEMA_VERSION
from tests.reports_kit import device, eui, make_db, ts


def lines(n: int, dev: bytes = eui(1), ppm: float = 900.0) -> str:
    t0 = ts(2026, 1, 5, 9)
    return "\n".join(
        f'{{"devEui": "{dev.hex()}", "time": {t0 + i * 900}, "measurements": {{"co2_ppm": {ppm}}}}}'
        for i in range(n)
    )


def store_with_history(tmp_path: Path) -> Store:
    # One radio reading for device 1 (FCnt 1) through the real group commit.
    db = make_db(
        tmp_path / "a.db",
        [device(1, "co2"), device(2, "co2")],
        [(eui(1), ts(2026, 1, 1), {"co2_ppm": 500})],
    )
    return Store(db, synchronous="NORMAL")


def test_import_is_marked_idempotent_and_not_forwarded(tmp_path: Path) -> None:
    s = store_with_history(tmp_path)
    s.commit_batch(
        Batch(fcnt_up={eui(1).hex(): 41}, seen={eui(1).hex(): (ts(2026, 1, 1), -80.0, 7.5, "{}")})
    )
    before = dict(s.devices()[0][1])
    out = s.import_readings(parse_import(lines(8)))
    assert (out["rows"], out["new"], out["present"], out["devices"]) == (8, 8, 0, 1)
    assert out["first"] == ts(2026, 1, 5, 9) and out["last"] == ts(2026, 1, 5, 9) + 7 * 900
    again = s.import_readings(parse_import(lines(10)))  # same 8 plus 2 more
    assert (again["new"], again["present"]) == (2, 8)
    rows = s.db.execute("SELECT id, origin, fcnt, time_valid FROM readings ORDER BY seq").fetchall()
    assert [r["origin"] for r in rows] == ["radio"] + ["import"] * 10
    assert all(r["id"].startswith("import-" + eui(1).hex()) for r in rows[1:])
    assert all(r["fcnt"] == 0 and r["time_valid"] == 1 for r in rows[1:])
    assert s.outbox_depth() == 0  # make_db's radio reading had no outbox row either
    after = dict(s.devices()[0][1])
    assert after == before and after["fcnt_up"] == 41 and after["last_seen"] == ts(2026, 1, 1)
    # `readings show` sees the mark as a new field.
    assert {r["origin"] for r in s.readings(eui(1))} == {"radio", "import"}
    s.close()


def test_unknown_device_refuses_everything(tmp_path: Path) -> None:
    s = store_with_history(tmp_path)
    rows = parse_import(lines(3) + "\n" + lines(2, eui(9)).replace("900.0", "901.0"))
    with pytest.raises(BadInput, match=eui(9).hex()):
        s.import_readings(rows)
    assert s.db.execute("SELECT count(*) FROM readings WHERE origin='import'").fetchone()[0] == 0
    s.close()


def test_dry_run_writes_nothing_and_works_read_only(tmp_path: Path) -> None:
    s = store_with_history(tmp_path)
    s.close()
    ro = Store(tmp_path / "a.db", readonly=True)
    out = ro.import_readings(parse_import(lines(4)), dry_run=True)
    assert (out["new"], out["present"], out["dry_run"]) == (4, 0, True)
    ro.close()
    s = Store(tmp_path / "a.db")
    assert s.db.execute("SELECT count(*) FROM readings").fetchone()[0] == 1
    s.close()


def test_reports_count_imported_readings(tmp_path: Path) -> None:
    s = store_with_history(tmp_path)
    s.import_readings(parse_import(lines(40, eui(2), ppm=1234.0)))
    s.close()
    rep = run_request(
        tmp_path / "a.db",
        {"kind": "co2", "from": "2026-01-05", "to": "2026-01-05"},
        ReportSettings(),
    )
    d2 = next(d for d in rep["devices"] if d["dev_eui"] == eui(2).hex())
    assert d2["max_ppm"] == 1234.0, d2


def test_ids_and_control_rows_round_trip() -> None:
    rows = parse_import(lines(3))
    assert from_json(to_json(rows)) == [
        type(from_json(to_json(rows))[0])(r.dev_eui, r.time, dict(r.measurements)) for r in rows
    ]
    a = reading_id(eui(1), 1.0, {"a": 1.0, "b": 2.0})
    assert (
        a
        == reading_id(eui(1), 1.0, {"b": 2.0, "a": 1.0})
        != reading_id(eui(1), 1.0, {"a": 1.5, "b": 2.0})
    )
    with pytest.raises(BadInput):
        from_json([["zz", 1, {}]])


def test_migration_4_is_idempotent(tmp_path: Path) -> None:
    s = Store(tmp_path / "b.db")
    s.close()
    db = sqlite3.connect(tmp_path / "b.db")
    MIGRATIONS[4](db)  # a file whose version row was lost: the column is there already
    assert SCHEMA_VERSION >= 4
    assert "origin" in {r[1] for r in db.execute("PRAGMA table_info(readings)")}
    db.close()


def test_retention_keeps_imported_history(tmp_path: Path) -> None:
    """Retention deletes forwarded radio readings only: history brought in for the reports
    stays (the disk cap's shedding is what bounds it)."""
    from gateway_agent.store import history

    s = store_with_history(tmp_path)
    s.import_readings(parse_import(lines(4)))
    with s._lock:  # noqa: SLF001 (the store thread's lock; tests call the table module directly)
        gone = history.expire_readings(s.db, ts(2027, 1, 1))
    origins = [r[0] for r in s.db.execute("SELECT origin FROM readings ORDER BY time")]
    assert gone == 1 and origins == ["import"] * 4  # the January radio reading went
    s.close()
