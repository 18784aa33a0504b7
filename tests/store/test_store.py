"""Store: schema/migrations, permissions, one-transaction batches, outbox order, disk cap order."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from gateway_agent.errors import StoreError
from gateway_agent.model import Alert, Device
from gateway_agent.secret import Secret
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING, SCHEMA_VERSION, Batch, Store

EUI = bytes.fromhex("70b3d57ed0000001")


def abp(eui: bytes = EUI, addr: str = "26011bda") -> Device:
    return Device(
        dev_eui=eui,
        name="P7",
        device_class="co2",
        codec="cayenne-lpp",
        dev_addr=bytes.fromhex(addr),
        nwk_s_key=Secret(bytes(range(16))),
        app_s_key=Secret(bytes(range(16, 32))),
    )


def reading_row(i: int, eui: str = EUI.hex()) -> tuple[object, ...]:
    return (f"gw:{eui}:{i}", eui, i, 1, time.time(), 1, b"\x01", "{}", "{}", None, -70.0, 8.0, 1)


def outbox_row(i: int, prio: int = PRIO_READING, eui: str = EUI.hex()) -> tuple[object, ...]:
    kind = {PRIO_READING: "up", PRIO_ALERT: "alert", PRIO_EVENT: "event"}[prio]
    return (
        prio,
        kind,
        eui,
        f"devices/{eui}/{kind}",
        f"id{i}",
        '{"x":' + "1" * 50 + "}",
        time.time(),
        0.0,
    )


def test_fresh_db_is_0600_wal_and_versioned(tmp_path: Path) -> None:
    s = Store(tmp_path / "agent.db")
    s.upsert_device(abp())
    assert (os.stat(tmp_path / "agent.db").st_mode & 0o777) == 0o600
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.db.execute("SELECT max(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert s.quick_check() == "ok"
    s.close()
    s2 = Store(tmp_path / "agent.db")  # re-open: migrations are idempotent
    assert len(s2.devices()) == 1
    s2.close()


def test_newer_schema_refused(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.db.execute("INSERT INTO schema_version VALUES (999)")
    s.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "a.db")


def test_keys_round_trip_and_never_in_repr(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.upsert_device(abp())
    dev, st = s.devices()[0]
    assert dev.nwk_s_key is not None and dev.nwk_s_key.reveal_bytes() == bytes(range(16))
    assert bytes(range(16)).hex() not in repr(dev)
    assert st["fcnt_up"] is None and st["fcnt_down"] == 0


def test_batch_is_one_transaction(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.upsert_device(abp())
    b = Batch()
    b.readings.append(reading_row(5))
    b.outbox.append(outbox_row(5))
    b.fcnt_up[EUI.hex()] = 5
    b.alerts.append(
        Alert(
            id="a1",
            dev_eui=EUI,
            rule="r",
            state="raised",
            severity="warning",
            measurement="co2_ppm",
            value=2100.0,
            time=time.time(),
        )
    )
    # A bad row at the end makes the whole batch fail: nothing of it may be visible.
    b.outbox.append(
        (PRIO_READING, "up", None, None, "x", "{}", 0.0, 0.0)
    )  # topic NULL violates NOT NULL
    with pytest.raises(StoreError):
        s.commit_batch(b)
    assert (
        s.readings() == []
        and s.outbox_stats()["depth"] == 0
        and s.devices()[0][1]["fcnt_up"] is None
    )
    b.outbox.pop()
    s.commit_batch(b)
    assert len(s.readings()) == 1 and s.outbox_stats()["depth"] == 1
    assert s.devices()[0][1]["fcnt_up"] == 5 and s.alerts()[0]["id"] == "a1"


def test_outbox_order_alerts_events_then_readings_in_seq(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    s.add_outbox(
        [
            outbox_row(1),
            outbox_row(2),
            outbox_row(3, PRIO_EVENT),
            outbox_row(4, PRIO_ALERT),
            outbox_row(5),
        ]
    )
    rows = s.outbox_fetch(10)
    assert [r.msg_id for r in rows] == ["id4", "id3", "id1", "id2", "id5"]
    s.outbox_delete([rows[0].seq, rows[2].seq])
    assert [r.msg_id for r in s.outbox_fetch(10)] == ["id3", "id2", "id5"]


def test_disk_cap_drops_history_then_readings_never_alerts_first(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db", synchronous="NORMAL")
    for chunk in range(20):
        b = Batch()
        for i in range(chunk * 200, chunk * 200 + 200):
            b.readings.append(reading_row(i))
            b.outbox.append(outbox_row(i))
        s.commit_batch(b)
    s.add_outbox([outbox_row(100_000 + i, PRIO_ALERT) for i in range(50)])
    before = s.outbox_stats()
    cap = s.used_bytes() // 2
    dropped = s.enforce_cap(cap, 0, time.time())
    after = s.outbox_stats()
    assert dropped["history"] > 0
    assert after["by_kind"]["alert"] == 50, "unsent alerts survive while routine rows remain"
    assert dropped["unsent_readings"] == before["by_kind"]["up"] - after["by_kind"].get("up", 0)
    assert s.used_bytes() <= cap
    # The oldest unsent readings went first: what is left is the newest.
    left = [r.msg_id for r in s.outbox_fetch(100_000) if r.kind == "up"]
    if left:
        assert left[-1] == "id3999"


def test_corrupt_file_raises_database_error(tmp_path: Path) -> None:
    p = tmp_path / "a.db"
    p.write_bytes(b"this is not a database" * 100)
    with pytest.raises((sqlite3.DatabaseError, StoreError)):
        Store(p)
