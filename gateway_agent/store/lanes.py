"""The `Store` methods over the outputs' lanes (store/queue.py), kept apart from store.py."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from gateway_agent.store import queue
from gateway_agent.store.db import SqliteFile
from gateway_agent.store.queue import QueueRow, QueueTuple


class OutputLanes:
    """Mixed into `Store`: every call holds the connection's lock; each write is a transaction."""

    _file: SqliteFile
    _lock: threading.RLock
    db: sqlite3.Connection
    drops_unreported: bool

    def queue_add(self, rows: Sequence[QueueTuple]) -> None:
        """Rows staged outside an ingest batch (tests, tools): one transaction."""
        self._file.write(lambda db: queue.insert(db, rows))

    def queue_fetch(self, output: str, limit: int, skip: Iterable[int] = ()) -> list[QueueRow]:
        with self._lock:
            return queue.fetch(self.db, output, limit, skip)

    def queue_delete(self, output: str, seqs: Sequence[int]) -> None:
        """Rows `output` has (its server said so): they leave its lane."""
        if seqs:
            self._file.write(lambda db: queue.delete(db, output, seqs))

    def queue_drop(self, output: str, seqs: Sequence[int], reason: str) -> int:
        """Rows `output` will never take leave its lane, counted for it and for `data_dropped`."""
        if not seqs:
            return 0
        n = int(self._file.write(lambda db: queue.drop_seqs(db, output, seqs, reason)))
        if n:
            self.drops_unreported = True
        return n

    def queue_stats(self) -> dict[str, dict[str, Any]]:
        """Per output: depth, by_kind, oldest (wall clock), dropped (by kind, since the file
        was made)."""
        with self._lock:
            out = queue.stats(self.db)
            for name, d in queue.dropped(self.db).items():
                out.setdefault(name, {"depth": 0, "by_kind": {}, "oldest": None})["dropped"] = d
            return out

    def queue_forget(self, keep: Iterable[str]) -> dict[str, int]:
        """At start: the lanes of outputs no longer configured go, counted (`output_removed`)."""
        keep = set(keep)
        with self._lock:
            gone = [o for o in queue.outputs_present(self.db) if o not in keep]
        if not gone:
            return {}
        out = dict(self._file.write(lambda db: queue.forget(db, gone)))
        if out:
            self.drops_unreported = True
        return out
