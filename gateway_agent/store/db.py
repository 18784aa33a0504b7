"""The SQLite file: opening it (pragmas, 0600), the write transaction, WAL checkpoints, on-disk
sizes and the `meta` key/value table. Knows no other table.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_agent.errors import DiskFullError, StoreError

# New files only (fixed at creation): a commit appends whole pages to the WAL, so smaller pages
# mean fewer bytes per commit on the SD card (docs/store-and-forward.md "SD-card wear").
PAGE_SIZE = 1024


class SqliteFile:
    """One connection and its lock. Every statement the store runs goes through `conn` under
    `lock`; writes go through `write`, one BEGIN IMMEDIATE transaction each."""

    def __init__(
        self,
        path: Path,
        synchronous: str,
        readonly: bool,
        max_bytes: int | None,
        page_size: int,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.wal_configured = 4 * 1024 * 1024
        self.wal_limit = 4 * 1024 * 1024
        self.page_size = PAGE_SIZE
        self.lock = threading.RLock()
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        db = self.conn = sqlite3.connect(
            self.path, check_same_thread=False, timeout=30, isolation_level=None
        )
        if db.execute("PRAGMA page_count").fetchone()[0] == 0:
            # Only settable before the first table. auto_vacuum lets the cap give pages
            # back to the FS.
            db.execute(f"PRAGMA page_size={int(page_size)}")
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("PRAGMA journal_mode=WAL")
        self.page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        db.execute("PRAGMA foreign_keys=OFF")
        # The WAL counts against the cap: checkpoint at 1/8 of it (SQLite default 4 MB at most).
        wal_bytes = 4 * 1024 * 1024
        if max_bytes:
            wal_bytes = max(64 * 1024, min(wal_bytes, max_bytes // 8))
        self.wal_configured = wal_bytes
        self.wal_limit = 0
        self.set_wal_limit(wal_bytes)

    def set_wal_limit(self, wal_bytes: int) -> None:
        """Checkpoint the WAL at `wal_bytes` (and truncate it back to that): 1/8 of the cap, or
        of the room the filesystem leaves when that is smaller (store/space.py)."""
        wal_bytes = max(64 * 1024, min(wal_bytes, self.wal_configured))
        if wal_bytes == self.wal_limit:
            return
        self.wal_limit = wal_bytes
        with self.lock:
            self.conn.execute(f"PRAGMA wal_autocheckpoint={wal_bytes // self.page_size}")
            self.conn.execute(f"PRAGMA journal_size_limit={wal_bytes}")

    # -- lifecycle -----------------------------------------------------------------------

    def fix_permissions(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            try:
                if p.exists() and (p.stat().st_mode & 0o077):
                    p.chmod(0o600)
            except OSError:
                pass

    def close(self) -> None:
        with self.lock:
            try:
                if not self.readonly:
                    self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self.conn.close()

    def quick_check(self) -> str:
        with self.lock:
            return str(self.conn.execute("PRAGMA quick_check").fetchone()[0])

    def checkpoint(self) -> None:
        with self.lock, contextlib.suppress(sqlite3.Error):
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- transactions --------------------------------------------------------------------

    def write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn(conn)` in one write transaction; returns what it returns. SQLite errors come
        out as `DiskFullError` (no space, I/O) or `StoreError`."""
        with self.lock:
            db = self.conn
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(db)
                    db.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (SQLITE_FULL does): a ROLLBACK then
                    # fails with "no transaction is active" and would hide the real error.
                    if db.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            db.execute("ROLLBACK")
                    raise
                return out
            except sqlite3.OperationalError as e:
                msg = str(e).lower()
                if db.in_transaction:
                    try:
                        db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if "full" in msg or "disk i/o" in msg:
                    raise DiskFullError(str(e)) from e
                raise StoreError(str(e)) from e
            except sqlite3.DatabaseError as e:
                raise StoreError(str(e)) from e

    # -- sizes ---------------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Bytes the database occupies on disk (main file + WAL)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return total

    def footprint(self) -> int:
        """What DB + WAL can reach before the WAL is next truncated: pages that so far live only
        in the WAL extend the main file at the checkpoint, while the WAL is still there."""
        with self.lock:
            pages = int(self.conn.execute("PRAGMA page_count").fetchone()[0])
        return max(self.file_bytes(), pages * self.page_size) + self.wal_bytes()

    def file_bytes(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def wal_bytes(self) -> int:
        try:
            return os.path.getsize(str(self.path) + "-wal")
        except OSError:
            return 0

    def used_bytes(self) -> int:
        """Bytes in live pages (excludes the freelist, which SQLite reuses before growing)."""
        with self.lock:
            pc = self.conn.execute("PRAGMA page_count").fetchone()[0]
            fl = self.conn.execute("PRAGMA freelist_count").fetchone()[0]
            ps = self.conn.execute("PRAGMA page_size").fetchone()[0]
        return int((pc - fl) * ps)

    # -- meta ----------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)
            )
        )
