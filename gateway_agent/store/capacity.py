"""The disk cap and shedding (invariant 4): what goes, in which order, when the file must shrink.
Each drop is counted (store/drops.py) in its own transaction; `on_drop` tells the owner.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from functools import partial

from gateway_agent.errors import DiskFullError, StoreError
from gateway_agent.store import drops, history, outbox, queue, space
from gateway_agent.store.db import SqliteFile
from gateway_agent.store.outbox import PRIO_EVENT, PRIO_READING

CAP_HIGH, CAP_LOW = 0.9, 0.75  # shed when past 90% of the cap, down to 75% (hysteresis)

# Shedding order, oldest first within each: history, unsent readings, events, then alerts only
# when nothing else is left; each kind from the outbox and every output's lane (store/queue.py).
# The priority is written into the SQL (partial index outbox_urgent).
_STEPS: tuple[tuple[str, Callable[[sqlite3.Connection, int], int]], ...] = (
    ("history", history.drop_oldest_readings),
    ("unsent_readings", partial(outbox.drop_oldest, priority=PRIO_READING)),
    ("unsent_readings", partial(queue.drop_oldest, priority=PRIO_READING)),
    ("unsent_events", partial(outbox.drop_oldest, priority=PRIO_EVENT)),
    ("unsent_events", partial(queue.drop_oldest, priority=PRIO_EVENT)),
    ("unsent_alerts", outbox.drop_oldest),
    ("unsent_alerts", queue.drop_oldest),
)


def make_room(
    f: SqliteFile,
    max_bytes: int,
    retention_s: float,
    est: int,
    on_drop: Callable[[], None],
    reason: str = "disk_cap",
) -> None:
    """Before a commit of about `est` WAL bytes: checkpoint a WAL near its limit, and shed
    ahead when the commit would take the file past CAP_HIGH of the cap (the configured cap, or
    the room the filesystem leaves: `reason` disk_full)."""
    if f.wal_bytes() + est > f.wal_limit:
        f.checkpoint()
    if f.footprint() + est > max_bytes * CAP_HIGH:
        enforce_cap(f, max_bytes, retention_s, time.time(), on_drop, extra_bytes=est, reason=reason)


def space_cap(
    f: SqliteFile, max_bytes: int | None, tune_wal: bool = True
) -> tuple[int, str] | None:
    """The cap in force: the configured one, or the room the filesystem leaves the DB when that
    is smaller (a full disk is shed like the cap, reason disk_full). The WAL follows: 1/8
    (with `tune_wal`, on the store thread: it sets a pragma)."""
    room = space.budget(f.path, f.size_bytes())
    if room is not None and (max_bytes is None or room < max_bytes):
        room = max(room, 0)
        if tune_wal:
            f.set_wal_limit(space.wal_limit(f.path, room))
        return room, "disk_full"
    if tune_wal:
        f.set_wal_limit(f.wal_configured)
    return (max_bytes, "disk_cap") if max_bytes else None


def shed_for_cap(
    f: SqliteFile,
    max_bytes: int | None,
    retention_s: float,
    now: float,
    on_drop: Callable[[], None],
    reason: str = "disk_cap",
) -> dict[str, int]:
    """`enforce_cap` under the cap in force (`space_cap`); when not even a delete can be
    written for space, the reserve file goes first (store/space.py) and it is tried again."""
    cap = space_cap(f, max_bytes)
    if cap is not None and (max_bytes is None or cap[0] < max_bytes):
        max_bytes, reason = cap
    if max_bytes is None:
        max_bytes = 1 << 62  # no cap and room to spare: retention only
    try:
        return enforce_cap(f, max_bytes, retention_s, now, on_drop, reason=reason)
    except DiskFullError:
        if not space.release_reserve(f.path):
            raise
    f.checkpoint()
    cap = space_cap(f, max_bytes)
    return enforce_cap(
        f, cap[0] if cap else max_bytes, retention_s, now, on_drop, reason="disk_full"
    )


def enforce_cap(
    f: SqliteFile,
    max_bytes: int,
    retention_s: float,
    now: float,
    on_drop: Callable[[], None],
    extra_bytes: int = 0,
    reason: str = "disk_cap",
) -> dict[str, int]:
    """Drop history past retention; then, over the cap, history oldest first, then the oldest
    unsent readings, then events, and alerts only when nothing else is left. Each delete records
    its counts in `meta.unreported_drops` in the same transaction, so a drop is never forgotten
    by a crash. Returns counts by kind."""
    dropped = dict.fromkeys(drops.DROP_KINDS, 0)
    if retention_s > 0:
        dropped["history"] += f.write(lambda db: history.expire_readings(db, now - retention_s))
    expired = dropped["history"]
    # Room for the coming commit, but never shed below a quarter of the cap for a guess.
    target = max(int(max_bytes * CAP_LOW) - extra_bytes, max_bytes // 4)
    steps = _STEPS
    if extra_bytes:
        steps = steps[:3]  # a forecast never costs an event or an alert, only a real excess
    if f.used_bytes() + f.wal_bytes() > target:
        f.checkpoint()
    with _fast_delete(f):
        _shed(f, steps, target, dropped, on_drop, reason)
    if sum(dropped.values()) > expired:
        # Shed for the cap: give the freed pages back to the FS. Rows past retention only
        # leave pages that the next commits reuse: no checkpoint and no page moves (wear).
        _vacuum(f)
    return dropped


@contextlib.contextmanager
def _fast_delete(f: SqliteFile) -> Iterator[None]:
    """While shedding, freed pages are not zeroed (Debian builds SQLite with secure_delete on):
    zeroing writes every freed page to the WAL, as many bytes as the rows deleted, which a
    full disk has no room for and which the cap counts."""
    with f.lock:
        old = f.conn.execute("PRAGMA secure_delete").fetchone()[0]
        f.conn.execute("PRAGMA secure_delete=FAST")
    try:
        yield
    finally:
        with f.lock, contextlib.suppress(sqlite3.Error):
            f.conn.execute(f"PRAGMA secure_delete={int(old)}")


def _shed(
    f: SqliteFile,
    steps: tuple[tuple[str, Callable[[sqlite3.Connection, int], int]], ...],
    target: int,
    dropped: dict[str, int],
    on_drop: Callable[[], None],
    reason: str,
) -> None:
    for kind, delete in steps:
        while f.used_bytes() + f.wal_bytes() > target:
            if f.wal_bytes() > 64 * 1024:
                f.checkpoint()  # the WAL our own deletes grew must not cost more rows
                if f.used_bytes() + f.wal_bytes() <= target:
                    break
            chunk = _chunk(f, kind, target)

            def fn(
                db: sqlite3.Connection,
                delete: Callable[[sqlite3.Connection, int], int] = delete,
                kind: str = kind,
                chunk: int = chunk,
            ) -> int:
                n = delete(db, chunk)
                if n:
                    drops.add(db, kind, n, reason)
                return n

            n = f.write(fn)
            dropped[kind] += n
            if not n:
                break
            on_drop()
            if f.wal_bytes() > f.wal_limit // 2:
                f.checkpoint()


def shed_for_space(
    f: SqliteFile,
    max_bytes: int | None,
    retention_s: float,
    on_drop: Callable[[], None],
) -> dict[str, int]:
    """The filesystem refused a write: drop to 80% of what we hold so pages are reused."""
    f.checkpoint()
    target = int(f.size_bytes() * 0.8)
    if max_bytes:
        target = min(target, max_bytes)
    cap = space_cap(f, max_bytes)
    if cap is not None:
        target = min(target, cap[0])
    for _ in range(2):
        try:
            return enforce_cap(f, target, retention_s, time.time(), on_drop, reason="disk_full")
        except DiskFullError:
            # Not even a delete fits in the WAL: the reserve file goes, then shed again.
            if not space.release_reserve(f.path):
                return {}
            f.checkpoint()
        except StoreError:
            return {}
    return {}


def _vacuum(f: SqliteFile) -> None:
    """Return free pages to the FS in steps: every page moved is a WAL frame, and the WAL
    counts against the cap until the checkpoint after each step."""
    step = max(16, f.wal_limit // (2 * f.page_size))
    f.checkpoint()
    for _ in range(10_000):
        with f.lock:
            try:
                if not f.conn.execute("PRAGMA freelist_count").fetchone()[0]:
                    break
                # executescript steps the pragma to the end; execute() frees one page only.
                f.conn.executescript(f"PRAGMA incremental_vacuum({step});")
            except sqlite3.Error:
                break
        f.checkpoint()
    f.checkpoint()


def _chunk(f: SqliteFile, kind: str, target: int) -> int:
    """Rows to delete per step: about the excess, so a small cap does not lose extra rows."""
    with f.lock:
        if kind == "history":
            n = f.conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        else:  # the outbox and the outputs' lanes hold rows of about the same size
            n = sum(
                f.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("outbox", "output_queue")
            )
    if not n:
        return 1
    per_row = max(64, f.used_bytes() // max(1, n))
    excess = f.used_bytes() + f.wal_bytes() - target
    # A delete copies its pages into the WAL: keep one step well inside the WAL budget.
    most = max(1, f.wal_limit // (2 * per_row))
    return int(max(1, min(2000, most, excess // per_row + 1)))
