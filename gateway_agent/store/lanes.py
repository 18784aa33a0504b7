"""The `Store` methods over the output queue, kept apart from store.py: the relay's own lane
(store/queue.py: rows leave as it takes them) and the rows every `[[outputs]]` entry shares
(store/fanout.py: stored once, each output's position per priority).

Positions move in memory as outputs deliver and reach the file with the next ingest commit, or
on their own after `CURSOR_EVERY_S` (`queue_flush`): a crash re-delivers at most that much.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway_agent.store import fanout, queue
from gateway_agent.store.db import SqliteFile
from gateway_agent.store.queue import QueueRow, QueueTuple

CURSOR_EVERY_S = 1.0


class OutputLanes:
    """Mixed into `Store`: every call holds the connection's lock; each write is a transaction."""

    _file: SqliteFile
    _lock: threading.RLock
    db: sqlite3.Connection
    drops_unreported: bool
    _fan: fanout.Cursors | None = None  # the daemon's positions (ahead of the file)
    _fan_dirty: set[tuple[str, int]]
    _fan_written = 0.0
    _qseq = 0  # the next seq to give (0: read from the file at the first insert)

    # -- set-up -------------------------------------------------------------------------

    def queue_configure(self, wants: Mapping[str, Iterable[int]]) -> None:
        """The daemon's outputs and the priorities each takes (0 alerts, 1 events, 2 readings)."""
        self._fan = dict(self._file.write(lambda db: fanout.configure(db, wants)))
        self._fan_dirty = set()
        self._fan_written = time.monotonic()

    def _cursors(self) -> fanout.Cursors:
        return self._fan if self._fan is not None else fanout.load(self.db)

    def _shared(self, output: str) -> bool:
        return any(o == output for o, _ in self._cursors())

    # -- the outputs' calls ---------------------------------------------------------------

    def queue_add(self, rows: Sequence[QueueTuple]) -> None:
        """Rows staged outside an ingest batch (tests, tools): one transaction."""
        self._file.write(lambda db: self.insert_queued(db, rows))

    def insert_queued(self, db: sqlite3.Connection, rows: Sequence[QueueTuple]) -> None:
        """Inside a write transaction (the ingest's commit): rows for the outputs, with seqs
        that never fall at or below a position, even after the table emptied."""
        if rows:
            floor = self._qseq if self._qseq else fanout.top_seq(db) + 1
            self._qseq = queue.insert(db, rows, floor)

    def queue_fetch(self, output: str, limit: int, skip: Iterable[int] = ()) -> list[QueueRow]:
        with self._lock:
            if self._shared(output):
                return fanout.fetch(self.db, self._cursors(), output, limit)
            return queue.fetch(self.db, output, limit, skip)

    def queue_settle(
        self, output: str, done: Sequence[int], refused: Sequence[int] = (), reason: str = ""
    ) -> int:
        """`output` has `done` (they landed) and will never take `refused` (counted as dropped
        for it, with `reason`). Returns how many refusals were counted."""
        if not done and not refused:
            return 0
        with self._lock:
            if self._fan is not None and self._shared(output):
                return self._settle_shared(output, done, refused, reason)

        def fn(db: sqlite3.Connection) -> int:
            queue.delete(db, output, done)
            return queue.drop_seqs(db, output, refused, reason) if refused else 0

        n = int(self._file.write(fn))
        if n:
            self.drops_unreported = True
        return n

    def _settle_shared(
        self, output: str, done: Sequence[int], refused: Sequence[int], reason: str
    ) -> int:
        assert self._fan is not None
        prios = fanout.advance(self.db, self._fan, output, {*done, *refused})
        self._fan_dirty.update(k for k in self._fan if k[0] == output)
        counts = [(output, prios[s]) for s in refused if s in prios]
        if counts:
            self._file.write(lambda db: queue.count_drops(db, queue.tally(counts), reason))
            self.drops_unreported = True
        if time.monotonic() - self._fan_written >= CURSOR_EVERY_S:
            self.queue_flush()
        return len(counts)

    def queue_delete(self, output: str, seqs: Sequence[int]) -> None:
        """Rows `output` has (its server said so)."""
        self.queue_settle(output, seqs)

    def queue_drop(self, output: str, seqs: Sequence[int], reason: str) -> int:
        """Rows `output` will never take, counted for it and for `data_dropped`."""
        return self.queue_settle(output, (), seqs, reason)

    def queue_flush(self) -> None:
        """Positions moved since the last write reach the file (and the shared rows every
        output has passed leave), in their own transaction."""
        with self._lock:
            if self._fan is not None and self._fan_dirty:
                self._file.write(self.lanes_in_commit)

    def lanes_in_commit(self, db: sqlite3.Connection) -> None:
        """Inside a write transaction (the ingest's commit, or `queue_flush`): the positions."""
        if self._fan is None or not self._fan_dirty:
            return
        dirty = set(self._fan_dirty)
        fanout.persist(db, self._fan, dirty)
        self._fan_dirty -= dirty  # a rolled-back commit leaves them moved in memory: re-sent
        self._fan_written = time.monotonic()

    # -- reads for status and the CLI -------------------------------------------------------

    def queue_stats(self) -> dict[str, dict[str, Any]]:
        """Per output: depth, by_kind, oldest (wall clock), dropped (by kind, since the file
        was made)."""
        with self._lock:
            out = {k: v for k, v in queue.stats(self.db).items() if k != fanout.FANOUT}
            out.update(fanout.stats(self.db, self._cursors()))
            for name, d in queue.dropped(self.db).items():
                out.setdefault(name, {"depth": 0, "by_kind": {}, "oldest": None})["dropped"] = d
            return out

    def queue_forget(self, keep: Iterable[str]) -> dict[str, int]:
        """At start: the lanes of outputs no longer configured go, counted (`output_removed`)."""
        keep = set(keep)
        with self._lock:
            cursors = dict(self._cursors())
            own = [o for o in queue.outputs_present(self.db) if o not in keep | {fanout.FANOUT}]
            shared = {o for o, _ in cursors if o not in keep}
        if not own and not shared:
            return {}

        def fn(db: sqlite3.Connection) -> dict[str, int]:
            out = queue.forget(db, own)
            for o, by_prio in fanout.forget(db, cursors, shared).items():
                rows = [(o, p) for p, n in by_prio.items() for _ in range(n)]
                queue.count_drops(db, queue.tally(rows), "output_removed")
                out[o] = out.get(o, 0) + len(rows)
            fanout.persist(db, cursors, ())
            return out

        out = dict(self._file.write(fn))
        if self._fan is not None:
            self._fan = cursors
        if out:
            self.drops_unreported = True
        return out
