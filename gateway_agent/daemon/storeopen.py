"""Opening the database at start: report a replayed WAL, make room on a full disk, salvage a
corrupt file's readable rows and move it aside (never a crash loop), and say what happened so it
can be sent upstream as a `database_recovered` event."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_agent.config import Config
from gateway_agent.errors import DiskFullError, StoreError
from gateway_agent.logfmt import log_event
from gateway_agent.store import Store, salvage, space

# The name these lines carried before the daemon was split into modules; log filters still match.
log = logging.getLogger("gateway_agent.daemon")


def wal_state(path: Path) -> dict[str, Any] | None:
    """A WAL left non-empty means the last run did not close cleanly (kill -9, power cut)."""
    wal = Path(f"{path}-wal")
    try:
        size = wal.stat().st_size
    except OSError:
        return None
    if size == 0:
        return None
    # WAL = 32-byte header + frames of (24 + page_size); a torn tail is ignored by SQLite.
    page = 4096
    with contextlib.suppress(OSError), wal.open("rb") as f:
        hdr = f.read(32)
        if len(hdr) == 32:
            page = int.from_bytes(hdr[8:12], "big") or 4096
    torn = size < 32 or (size - 32) % (24 + page) != 0
    return {"walBytes": size, "walTorn": torn}


def open_store(cfg: Config) -> tuple[Store, dict[str, Any] | None]:
    """Open the DB; a corrupt or unreadable one gives its readable rows to a fresh file
    (store/salvage.py) and is moved aside (never a crash loop). A full disk is not corruption:
    room is made by the eviction order (Store.make_space). Returns the store and, when it
    recovered, what to report upstream."""
    path = cfg.agent.db_path
    cap = int(cfg.store.max_db_mb * 1024 * 1024)
    retention = cfg.store.retention_days * 86400

    def make(p: Path = path) -> Store:
        return Store(p, cfg.store.synchronous, max_bytes=cap, retention_s=retention)

    wal = wal_state(path)
    try:
        store = _open_with_room(make, path)
        if cfg.store.quick_check_on_start:
            result = store.quick_check()
            if result != "ok":
                store.close()
                raise StoreError(f"quick_check: {result[:200]}")
        start_room(store)
        if wal is not None:
            log_event(log, logging.WARNING, "database_recovered", action="wal_replayed", **wal)
            return store, {"action": "wal_replayed", **wal}
        return store, None
    except (sqlite3.DatabaseError, StoreError, OSError) as e:
        if isinstance(e, StoreError) and "newer than this agent" in str(e):
            raise
        if _space_error(e):
            # Still no room for even the reserve's worth: start on the file as it is; commits
            # are refused (counted) until space comes back, the broker drains what it can.
            log_event(log, logging.ERROR, "store_degraded", reason="disk_full", error=str(e))
            store = Store(path, cfg.store.synchronous, readonly=True, max_bytes=cap)
            return store, None
        return _recover(cfg, make, path, e)


def _space_error(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, DiskFullError) or "full" in msg or "no space" in msg


def _open_with_room(make: Callable[[], Store], path: Path) -> Store:
    """Open; when even opening needs a write the full disk refuses, give up the reserve file
    (store/space.py) and try once more."""
    try:
        return make()
    except (sqlite3.DatabaseError, StoreError, OSError) as e:
        if not _space_error(e) or not space.release_reserve(path):
            raise
        log_event(log, logging.WARNING, "disk_full_at_start", action="reserve_released")
        return make()


def start_room(store: Store) -> None:
    """A daemon killed on a full disk must start again and drain: shed to the cap in force
    (the filesystem's room) by the eviction order before anything else writes."""
    try:
        dropped = store.make_space()
    except StoreError as e:
        log.debug("make_space failed", exc_info=True)
        log_event(log, logging.ERROR, "disk_full_at_start", action="none_possible", error=str(e))
        return
    st = store.space_state()
    if any(dropped.values()):
        log_event(
            log,
            logging.WARNING,
            "disk_full_at_start",
            action="evicted",
            cap_bytes=st["cap_bytes"],
            free_bytes=st["fs_free_bytes"],
            **{k: v for k, v in dropped.items() if v},
        )
    elif st["limited_by"] == "filesystem":
        log_event(
            log,
            logging.INFO,
            "store_cap_from_filesystem",
            cap_bytes=st["cap_bytes"],
            free_bytes=st["fs_free_bytes"],
        )


def _recover(
    cfg: Config, make: Callable[..., Store], path: Path, e: BaseException
) -> tuple[Store, dict[str, Any] | None]:
    """Salvage the readable rows into a fresh file, move the damaged one aside, start on the
    fresh one. A salvage that fails (no room for the copy, say) still moves aside."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    n = 0
    while Path(f"{path}.corrupt-{stamp}{'-' + str(n) if n else ''}").exists():
        n += 1
    tag = f"{stamp}{'-' + str(n) if n else ''}"
    fresh = Path(f"{path}.salvage")
    counts: dict[str, dict[str, int]] | None = None
    _remove(fresh)
    try:
        new = make(fresh)
        try:
            counts = salvage.salvage(path, new.db)
        finally:
            new.close()
    except (sqlite3.Error, StoreError, OSError) as se:
        log_event(log, logging.ERROR, "salvage_failed", error=str(se))
        counts = None
        _remove(fresh)
    moved = []
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(path) + suffix)
        if p.exists():
            dest = Path(f"{path}.corrupt-{tag}{suffix}")
            shutil.move(p, dest)
            moved.append(str(dest))
    if counts is not None:
        for suffix in ("-wal", "-shm"):
            _remove(Path(f"{fresh}{suffix}"))
        os.replace(fresh, path)
    extra = {} if counts is None else {"salvaged": counts["salvaged"], "skipped": counts["skipped"]}
    log_event(
        log,
        logging.ERROR,
        "database_recovered",
        action="moved_aside",
        error=str(e),
        moved_to=moved[0] if moved else None,
        salvaged=sum(counts["salvaged"].values()) if counts else 0,
        skipped=sum(counts["skipped"].values()) if counts else 0,
    )
    store = make()
    return store, {"action": "moved_aside", "error": str(e), "movedTo": moved, **extra}


def _remove(p: Path) -> None:
    with contextlib.suppress(OSError):
        p.unlink()
