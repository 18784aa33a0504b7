"""Damaged rows (#16 item 4), salvage from a damaged file (item 5) and retention that keeps
unsent readings (item 8, retention part), on a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from gateway_agent.store import PRIO_ALERT, PRIO_READING, Batch, Store
from gateway_agent.store.salvage import salvage

EUI = "70b3d57ed0000001"


def fill(s: Store, n: int, t: float | None = None, alert_every: int = 0) -> None:
    t = time.time() if t is None else t
    b = Batch()
    for i in range(n):
        rid = f"gw:{EUI}:{i}"
        b.readings.append((rid, EUI, i, 1, t, 1, b"\x01", '{"t":1}', "{}", None, -70, 8, 1))
        b.outbox.append((PRIO_READING, "up", EUI, f"devices/{EUI}/up", rid, '{"i":1}', t, 0.0))
        if alert_every and i % alert_every == 0:
            b.outbox.append((PRIO_ALERT, "alert", EUI, "a", f"al{i}", '{"a":1}', t, 0.0))
    b.fcnt_up[EUI] = n - 1
    s.commit_batch(b)


def drops(s: Store) -> dict[str, object]:
    raw = s.get_meta("unreported_drops")
    return json.loads(raw) if raw else {}


def spoil(s: Store, sql: str) -> None:
    """Not UTF-8 in a TEXT column: CAST(x'..' AS TEXT) stores the bytes as they are."""
    s.db.execute(sql)
    assert s.quick_check() == "ok", "quick_check does not look at text encodings"


def test_damaged_outbox_rows_are_set_aside_one_by_one(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    fill(s, 300, alert_every=100)
    spoil(s, "UPDATE outbox SET body = CAST(X'7bff' AS TEXT) WHERE seq IN (5, 7)")
    spoil(s, "UPDATE outbox SET topic = CAST(X'ff' AS TEXT) WHERE kind = 'alert' AND seq < 50")
    rows = s.outbox_fetch_readings(100, 0)
    assert [r[0] for r in rows][:6] == [1, 3, 4, 6, 8, 9]  # seq 2: an alert
    urgent = s.outbox_fetch_urgent(10)
    assert len(urgent) == 2
    d = drops(s)
    assert d["unsent_readings"] == 2 and d["unsent_alerts"] == 1 and d["reasons"] == ["unreadable"]
    assert s.drops_unreported and s.damaged == {"outbox": 3}
    assert s.db.execute("SELECT count(*) FROM outbox").fetchone()[0] == 300
    s.close()


def test_a_whole_read_of_damaged_rows_does_not_end_the_drain(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db", readonly=False)
    fill(s, 50)
    spoil(s, "UPDATE outbox SET body = CAST(X'ff' AS TEXT) WHERE seq <= 20")
    s.close()
    ro = Store(tmp_path / "a.db", readonly=True)  # cannot set them aside: still reads past
    rows = ro.outbox_fetch_readings(10, 0)
    assert [r[0] for r in rows] == list(range(21, 31))
    ro.close()


def test_damaged_history_rule_state_and_alerts_are_skipped(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    fill(s, 20)
    spoil(s, "UPDATE readings SET measurements = CAST(X'7bff7d' AS TEXT) WHERE fcnt = 3")
    spoil(s, "UPDATE readings SET flags = 'not json' WHERE fcnt = 4")
    s.db.execute("INSERT INTO rule_state VALUES ('hot', ?, 'raised')", (EUI,))
    spoil(s, "INSERT INTO rule_state VALUES ('hot', CAST(X'ff00' AS TEXT), 'raised')")
    s.db.execute(
        "INSERT INTO alerts(id, dev_eui, rule, state, severity, time) VALUES"
        " (CAST(X'ff' AS TEXT), ?, 'hot', 'raised', 'warning', 1)",
        (EUI,),
    )
    got = s.readings(limit=100)
    assert len(got) == 18 and {r["fcnt"] for r in got}.isdisjoint({3, 4})
    assert s.rule_states() == {("hot", EUI): "raised"}
    assert s.db.execute("SELECT count(*) FROM rule_state").fetchone()[0] == 1, "reset, once"
    assert s.alerts() == []
    assert s.damaged == {"readings": 2, "rule_state": 1, "alerts": 1}
    s.close()


def test_salvage_copies_every_readable_row_but_the_history(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    s = Store(old)
    for k in range(4):  # several commits: the history spans many pages
        b = Batch()
        for i in range(k * 200, (k + 1) * 200):
            rid = f"gw:{EUI}:{i}"
            b.readings.append((rid, EUI, i, 1, 1.0, 1, b"\x01" * 50, "{}", "{}", None, 0, 0, 1))
            b.outbox.append((PRIO_READING, "up", EUI, "t", rid, '{"i":1}', 1.0, 0.0))
        s.commit_batch(b)
    s.db.execute(
        "INSERT INTO devices(dev_eui, class, created, updated, fcnt_up) VALUES (?, 'co2', 0, 0, 799)",
        (EUI,),
    )
    s.db.execute("INSERT INTO dev_nonces VALUES (?, 7, 1.0)", (EUI,))
    s.db.execute("UPDATE outbox SET body = CAST(X'ff' AS TEXT) WHERE seq = 9")
    pages = [
        r[0]
        for r in s.db.execute("SELECT pageno FROM dbstat WHERE name='readings' AND pagetype='leaf'")
    ]
    s.close()
    with old.open("r+b") as f:
        f.seek(1024 * (pages[len(pages) // 2] - 1))
        f.write(b"\x0d\x00\x00\xff\xff" + b"\xa5" * 1019)
    try:
        with sqlite3.connect(old) as c:
            assert c.execute("PRAGMA quick_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError:
        pass  # or the check itself fails: either way the start check refuses the file
    new = Store(tmp_path / "new.db")
    counts = salvage(old, new.db)
    assert counts["salvaged"]["outbox"] == 799 and counts["skipped"]["outbox"] == 1
    assert counts["salvaged"]["devices"] == 1 and counts["salvaged"]["dev_nonces"] == 1
    assert "readings" not in counts["salvaged"]
    seqs = [r[0] for r in new.db.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert seqs[:9] == [1, 2, 3, 4, 5, 6, 7, 8, 10], "seqs (and so ids and order) kept"
    assert new.devices()[0][1]["fcnt_up"] == 799, "replay protection survives"
    new.close()


def test_salvage_steps_over_a_damaged_outbox_page(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    s = Store(old)
    fill(s, 2000)
    pages = [
        r[0]
        for r in s.db.execute("SELECT pageno FROM dbstat WHERE name='outbox' AND pagetype='leaf'")
    ]
    s.close()
    with old.open("r+b") as f:
        f.seek(1024 * (pages[len(pages) // 2] - 1))
        f.write(b"\x0d\x00\x00\xff\xff" + b"\xa5" * 1019)
    new = Store(tmp_path / "new.db")
    counts = salvage(old, new.db)
    n = counts["salvaged"]["outbox"]
    assert 1900 < n < 2000, counts  # all but the rows of one page
    top = new.db.execute("SELECT max(seq) FROM outbox").fetchone()[0]
    assert top == 2000, "rows after the damaged page are salvaged too"
    new.close()


def test_retention_deletes_only_forwarded_history(tmp_path: Path) -> None:
    """A clock stepped from 1970 stamps every earlier reading decades old: retention must not
    take a reading that is still in the outbox out of the history."""
    s = Store(tmp_path / "a.db")
    fill(s, 100, t=100.0)  # stamped in 1970
    acked = [r[0] for r in s.outbox_fetch_readings(40, 0)]
    s.outbox_delete(acked)  # the first 40 went upstream
    dropped = s.enforce_cap(1 << 40, 86400, time.time())
    assert dropped["history"] == 40
    left = [r["fcnt"] for r in s.readings(limit=1000)]
    assert left == list(range(40, 100)), "every unsent reading is still in the history"
    s.close()


def test_damaged_device_row_keeps_the_device_and_its_counters(tmp_path: Path) -> None:
    """A bad byte in a device's name must not lose the device (its session and FCnt state
    protect against replays) nor stop the load at start: the text is read with U+FFFD."""
    from gateway_agent.model import Device
    from gateway_agent.secret import Secret

    s = Store(tmp_path / "a.db")
    key = Secret(bytes(range(16)))
    dev = Device(dev_eui=bytes.fromhex(EUI), name="P7", device_class="co2", codec="cayenne-lpp",
                 dev_addr=bytes.fromhex("26011bda"), nwk_s_key=key, app_s_key=key)  # fmt: skip
    s.upsert_devices([dev])
    fill(s, 5)
    spoil(s, f"UPDATE devices SET name = CAST(X'50ff37' AS TEXT) WHERE dev_eui = '{EUI}'")
    got = s.devices()
    assert len(got) == 1
    d, st = got[0]
    assert d.dev_eui.hex() == EUI and d.name == "P\ufffd7" and st["fcnt_up"] == 4
    assert d.nwk_s_key is not None and d.nwk_s_key.reveal_bytes() == bytes(range(16))
    s.close()
