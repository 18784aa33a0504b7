"""Opening the database at start: report a replayed WAL, move a corrupt file aside (never a crash
loop), and say what happened so it can be sent upstream as a `database_recovered` event."""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from gateway_agent.config import Config
from gateway_agent.errors import StoreError
from gateway_agent.logfmt import log_event
from gateway_agent.store import Store

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
    """Open the DB; a corrupt or unreadable one is moved aside and a fresh one started (never a
    crash loop). Returns the store and, when it recovered, what to report upstream."""
    path = cfg.agent.db_path
    cap = int(cfg.store.max_db_mb * 1024 * 1024)
    retention = cfg.store.retention_days * 86400

    def make() -> Store:
        return Store(path, cfg.store.synchronous, max_bytes=cap, retention_s=retention)

    wal = wal_state(path)
    try:
        store = make()
        if cfg.store.quick_check_on_start:
            result = store.quick_check()
            if result != "ok":
                store.close()
                raise StoreError(f"quick_check: {result[:200]}")
        if wal is not None:
            log_event(log, logging.WARNING, "database_recovered", action="wal_replayed", **wal)
            return store, {"action": "wal_replayed", **wal}
        return store, None
    except (sqlite3.DatabaseError, StoreError, OSError) as e:
        if isinstance(e, StoreError) and "newer than this agent" in str(e):
            raise
        stamp = time.strftime("%Y%m%dT%H%M%S")
        n = 0
        while Path(f"{path}.corrupt-{stamp}{'-' + str(n) if n else ''}").exists():
            n += 1
        tag = f"{stamp}{'-' + str(n) if n else ''}"
        moved = []
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(path) + suffix)
            if p.exists():
                dest = Path(f"{path}.corrupt-{tag}{suffix}")
                shutil.move(p, dest)
                moved.append(str(dest))
        log_event(
            log,
            logging.ERROR,
            "database_recovered",
            action="moved_aside",
            error=str(e),
            moved_to=moved[0] if moved else None,
        )
        store = make()
        return store, {"action": "moved_aside", "error": str(e), "movedTo": moved}
