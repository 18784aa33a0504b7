"""A full disk (not the cap) on a real small filesystem (tmpfs, root): room is made by invariant
4's eviction order and the commit goes through; alerts are kept; a daemon killed on the full disk
starts again, makes room and drains (issue #16 items 2 and 3)."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_agent.store import PRIO_ALERT, PRIO_READING, Batch, Store
from hil.bench.diskfull import can_mount, fill, run_diskfull, small_fs

pytestmark = pytest.mark.skipif(not can_mount(), reason="needs root to mount a small tmpfs")

EUI = "70b3d57ed0000001"


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Path]:
    with small_fs(tmp_path / "fs", 4) as d:
        yield d


def batch(start: int, n: int, alert: bool = True) -> Batch:
    now = time.time()
    b = Batch()
    for i in range(start, start + n):
        body = json.dumps({"id": f"gw:{EUI}:{i}", "pad": "x" * 400})
        b.readings.append(
            (f"gw:{EUI}:{i}", EUI, i, 1, now, 1, b"\x01" * 8, '{"t":21}', "{}", None, -70, 8, 1)
        )
        b.outbox.append(
            (PRIO_READING, "up", EUI, f"devices/{EUI}/up", f"gw:{EUI}:{i}", body, now, 0.0)
        )
    if alert:
        b.outbox.append(
            (PRIO_ALERT, "alert", EUI, f"devices/{EUI}/alert", f"hot:{start}", "{}", now, 0.0)
        )
    return b


def drops(s: Store) -> dict[str, object]:
    raw = s.get_meta("unreported_drops")
    return json.loads(raw) if raw else {}


def test_full_disk_makes_room_by_eviction_order(fs: Path) -> None:
    """Item 2: a 4 MB filesystem, a 512 MB cap, the broker down: three filesystems' worth of
    readings. Every commit goes through (nothing refused), every alert is kept, history goes
    first, then the oldest unsent readings; all counted with reason disk_full."""
    s = Store(fs / "agent.db", max_bytes=512 * 1024 * 1024)
    n = 0
    for _ in range(400):  # ~12 MB of rows written
        s.commit_batch(batch(n, 50))
        n += 50
    alerts = s.db.execute("SELECT count(*) FROM outbox WHERE kind='alert'").fetchone()[0]
    assert alerts == 400, "every unsent alert kept while routine rows remain"
    d = drops(s)
    assert d.get("history", 0) > 0 and d.get("unsent_readings", 0) > 0, d
    assert d["reasons"] == ["disk_full"]
    assert not d.get("unsent_alerts")
    left = s.db.execute("SELECT min(seq), count(*) FROM outbox WHERE kind='up'").fetchone()
    assert left[1] > 0 and left[1] + d["unsent_readings"] == n, "the oldest unsent readings went"
    assert s.quick_check() == "ok"
    s.close()


def _fill_and_die(path: str) -> None:
    s = Store(path, max_bytes=512 * 1024 * 1024)
    n = 0
    for _ in range(200):
        s.commit_batch(batch(n, 50))
        n += 50
    os._exit(9)  # kill -9: no close, the WAL stays behind


def test_killed_on_full_disk_starts_and_makes_room(fs: Path) -> None:
    """Item 3: killed with a full store, then the last free byte taken by someone else: the
    store opens, frees space by the eviction order (the reserve file goes first so a delete can
    be written) and commits again; never 'database or disk is full' at start."""
    from gateway_agent.daemon.storeopen import start_room

    db = fs / "agent.db"
    p = multiprocessing.get_context("fork").Process(target=_fill_and_die, args=(str(db),))
    p.start()
    p.join()
    assert Path(f"{db}-wal").exists()
    assert fill(fs) > 0
    assert os.statvfs(fs).f_bavail == 0
    s = Store(db, max_bytes=512 * 1024 * 1024)
    start_room(s)
    s.commit_batch(batch(10**6, 20))  # room was made: commits go through
    d = drops(s)
    assert d.get("history", 0) > 0 and "disk_full" in d["reasons"]
    alerts = s.db.execute("SELECT count(*) FROM outbox WHERE kind='alert'").fetchone()[0]
    assert alerts == 201
    assert s.quick_check() == "ok"
    s.close()


def test_daemon_on_a_full_disk_e2e(tmp_path: Path) -> None:
    """Items 2 and 3 black-box (short form of hil/bench/diskfull.py): 6 MB filesystem, broker
    down, 200 uplinks/s for 20 s; then kill -9, the last byte filled, start again."""
    r = run_diskfull(tmp_path, mb=6, rate=200, seconds=20, devices=10)
    assert r["refused"] == 0, r
    assert r["accepted"] == r["uplinks"], r
    assert r["restart_exits"] == 0, r
    assert r["alerts_delivered"] == r["alerts_raised"] == r["alerts_expected"], r
    dropped = r["dropped_reported"]
    assert dropped["unsent_readings"] > 0 and dropped["unsent_alerts"] == 0, r
    assert r["readings_delivered"] + dropped["unsent_readings"] >= r["accepted"], r
