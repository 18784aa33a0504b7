"""Filesystem space: the budget a full disk leaves the database (a cap the filesystem sets, shed
like the configured one, invariant 4), and a small reserve file given up when even a delete
cannot be written, so room can always be made by the eviction order (never a crash loop)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RESERVE_MAX = 8 * 1024 * 1024  # the reserve file: at most 8 MiB, 1/16 of a small filesystem
RESERVE_WHEN_FREE = 256 * 1024 * 1024  # below this much free space the reserve file is kept
MARGIN_MIN = 256 * 1024  # kept free beside the DB: -shm, the log, a directory entry or two


def reserve_path(db: Path) -> Path:
    return Path(f"{db}.reserve")


def fs_figures(db: Path) -> tuple[int, int] | None:
    """(free bytes for us, filesystem size) of the filesystem holding `db`; None when unknown."""
    try:
        st = os.statvfs(db.parent)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def budget(db: Path, held: int) -> int | None:
    """Bytes the DB + WAL may occupy on this filesystem: what they hold now (`held`) plus the
    free space, less a margin for the -shm, the log and the reserve's return. None: unknown."""
    figs = fs_figures(db)
    if figs is None:
        return None
    free, size = figs
    return held + free - max(MARGIN_MIN, size // 50) - _reserve_due(db, size)


def _reserve_due(db: Path, fs_size: int) -> int:
    """Room to keep for the reserve file while it is given up (it comes back when there is)."""
    if reserve_path(db).exists():
        return 0
    return reserve_size(fs_size)


def reserve_size(fs_size: int) -> int:
    """1/16 of the filesystem, 256 KiB to RESERVE_MAX: room for a checkpoint of the WAL a
    kill -9 leaves (at most half of it, see `wal_limit`) and the first deletes after it."""
    return max(256 * 1024, min(RESERVE_MAX, fs_size // 16))


def wal_limit(db: Path, room: int) -> int:
    """The WAL limit while the filesystem sets the cap: 1/8 of the room, and at most half the
    reserve, so that a WAL left by a kill -9 always fits once the reserve is given up."""
    figs = fs_figures(db)
    size = figs[1] if figs else 0
    return min(room // 8, reserve_size(size) // 2)


def keep_reserve(db: Path) -> bool:
    """The reserve file is kept only where space runs short (free below RESERVE_WHEN_FREE):
    True when it is there or not needed. A roomy disk pays no write for it."""
    figs = fs_figures(db)
    if figs is None or figs[0] >= RESERVE_WHEN_FREE:
        return True
    return ensure_reserve(db)


def ensure_reserve(db: Path) -> bool:
    """Create the reserve file when it is missing and the filesystem has room for it and more;
    True when it is there afterwards."""
    p = reserve_path(db)
    if p.exists():
        return True
    figs = fs_figures(db)
    if figs is None:
        return False
    free, size = figs
    n = reserve_size(size)
    if free < 2 * n:
        return False
    tmp = Path(f"{p}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0" * n)  # real blocks: a sparse file would free nothing
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True


def release_reserve(db: Path) -> int:
    """Give the reserve file's blocks back to the filesystem; returns the bytes freed."""
    p = reserve_path(db)
    try:
        n = p.stat().st_size
        p.unlink()
    except OSError:
        return 0
    return n
