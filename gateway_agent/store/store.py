"""`Store`, the facade the daemon, CLI and tools use: it holds the connection's lock and the
process state (outbox seq floor, deferred acks, drop flags) and calls into one module per table.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gateway_agent.errors import DiskFullError, StoreError
from gateway_agent.logfmt import log_event
from gateway_agent.model import Device
from gateway_agent.store import (
    batch,
    capacity,
    damaged,
    devices,
    downlink_queue,
    drops,
    gateways,
    history,
    imports,
    migrations,
    outbox,
    space,
)
from gateway_agent.store.batch import Batch
from gateway_agent.store.db import PAGE_SIZE, SqliteFile
from gateway_agent.store.lanes import OutputLanes
from gateway_agent.store.outbox import OutboxRow, OutboxTuple

# Named for the package, as when this lived in gateway_agent/store.py: log filters keep matching.
log = logging.getLogger("gateway_agent.store")


class Store(OutputLanes):
    """Blocking API, called from one dedicated thread (store/thread.py). Reads run under the
    lock; each write is one transaction. Invariant 1 lives in `commit_batch`."""

    def __init__(
        self,
        path: str | Path,
        synchronous: str = "FULL",
        readonly: bool = False,
        max_bytes: int | None = None,
        retention_s: float = 0.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self.disk_full_since: float | None = None  # monotonic; set while writes fail for space
        # Set when rows were dropped since the last `report_drops`: the daemon reports them
        # within a rule tick instead of waiting for its next housekeeping round.
        self.drops_unreported = False
        self.damaged: dict[str, int] = {}  # rows with damaged text set aside, by table
        self._deferred: list[int] = []  # acked outbox seqs riding in the next commit
        self._deferred_since = 0.0  # monotonic: when the oldest of them was acked (about)
        self._next_seq = 1  # outbox seqs only grow while this process lives: see outbox.insert
        self._file = SqliteFile(self.path, synchronous, readonly, max_bytes, page_size)
        self._lock = self._file.lock
        self.db = self._file.conn
        self.reserve_ok = True  # the reserve file (store/space.py) is there or not needed
        if not readonly:
            migrations.migrate(self.db)
            self._next_seq = outbox.max_seq(self.db) + 1
            self._file.fix_permissions()
            self.reserve_ok = space.keep_reserve(self.path)
        self.db.row_factory = sqlite3.Row

    # -- lifecycle -----------------------------------------------------------------------

    def fix_permissions(self) -> None:
        self._file.fix_permissions()

    def close(self) -> None:
        if not self.readonly:
            with contextlib.suppress(StoreError):  # a full disk: positions re-sent, not lost
                self.queue_flush()  # the outputs' positions moved since the last commit
        self._file.close()

    def quick_check(self) -> str:
        return self._file.quick_check()

    def size_bytes(self) -> int:
        """Bytes the database occupies on disk (main file + WAL)."""
        return self._file.size_bytes()

    def used_bytes(self) -> int:
        """Bytes in live pages (excludes the freelist, which SQLite reuses before growing)."""
        return self._file.used_bytes()

    def checkpoint(self) -> None:
        self._file.checkpoint()

    def _wal_bytes(self) -> int:
        return self._file.wal_bytes()

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return self._file.get_meta(key, default)

    def set_meta(self, key: str, value: str) -> None:
        self._file.set_meta(key, value)

    # -- devices -------------------------------------------------------------------------

    def upsert_device(self, dev: Device, origin: str = "cli") -> None:
        self.upsert_devices([dev], origin)

    def upsert_devices(
        self, devs: Iterable[Device], origin: str = "cli", fcnt_up: Mapping[str, int] | None = None
    ) -> int:
        """Insert or update devices (one transaction). `fcnt_up`: ABP sessions' last uplink
        counters carried from another server (`devices import`), by EUI hex."""
        now = time.time()

        def fn(db: sqlite3.Connection) -> int:
            n = devices.upsert(db, devs, origin, now)
            if fcnt_up:
                devices.carry_fcnt_up(db, fcnt_up)
            return n

        return int(self._file.write(fn))

    def remove_device(self, dev_eui: bytes) -> bool:
        return bool(self._file.write(lambda db: devices.remove(db, dev_eui)))

    def sync_devices(self, devs: Sequence[Device], origin: str = "file") -> tuple[int, list[str]]:
        """Make the `origin` devices exactly `devs`: upsert them, remove the ones no longer
        listed. Returns how many are listed and the EUIs (hex) removed."""
        self.upsert_devices(devs, origin)
        keep = {d.dev_eui.hex() for d in devs}
        with self._lock:
            stale = devices.euis_of_origin(self.db, origin)
        return len(devs), [
            eui for eui in stale if eui not in keep and self.remove_device(bytes.fromhex(eui))
        ]

    def session_sources(self) -> dict[str, dict[str, Any]]:
        """Devices whose session came from a central server (passive mode), by EUI hex."""
        with self._lock:
            return devices.session_sources(self.db)

    def devices(self) -> list[tuple[Device, dict[str, Any]]]:
        """Every device with its runtime state (fcnt_up, fcnt_down, last_seen, ...)."""
        with self._lock:
            rows = devices.select_all(self.db)
        return devices.with_state(rows)

    def device_counts(self, heard_since: float) -> tuple[int, int]:
        """(provisioned, heard at or after `heard_since`), without reading the rows."""
        with self._lock:
            return devices.counts(self.db, heard_since)

    def device(self, dev_eui: bytes) -> tuple[Device, dict[str, Any]] | None:
        for d, st in self.devices_where("dev_eui=?", (dev_eui.hex(),)):
            return d, st
        return None

    def devices_where(
        self, where: str, args: tuple[Any, ...]
    ) -> list[tuple[Device, dict[str, Any]]]:
        with self._lock:
            rows = devices.select_where(self.db, where, args)
        return devices.with_counters(rows)

    def used_dev_nonces(self, dev_eui: bytes) -> set[int]:
        with self._lock:
            return devices.used_dev_nonces(self.db, dev_eui)

    def all_dev_nonces(self) -> dict[str, list[int]]:
        """Every device's used DevNonces (dev_eui hex -> nonces): the ingest keeps them in memory."""
        with self._lock:
            return devices.all_dev_nonces(self.db)

    def bump_fcnt_down(self, dev_eui: bytes) -> int:
        """Increment and persist FCntDown BEFORE the downlink is sent (LORAWAN.md 5.2); returns the value to use."""
        return int(self._file.write(lambda db: devices.bump_fcnt_down(db, dev_eui)))

    def next_join_nonce(self, dev_eui: bytes) -> int:
        return int(self._file.write(lambda db: devices.next_join_nonce(db, dev_eui)))

    # -- ingest --------------------------------------------------------------------------

    def commit_batch(self, b: Batch) -> None:
        """One transaction: readings, outbox rows, FCnts, rule state, alerts, joins (invariant 1)."""
        deferred = list(self._deferred)

        def fn(db: sqlite3.Connection) -> None:
            batch.write(db, b, deferred, self._insert_outbox)
            self.insert_queued(db, b.queued)
            self.lanes_in_commit(db)  # the outputs' positions ride along (store/lanes.py)

        # The cap in force: the configured one, or the room a full disk leaves (reason
        # disk_full): either way shed ahead by invariant 4's order.
        cap = capacity.space_cap(self._file, self.max_bytes)
        if cap is not None:
            est = batch.wal_estimate(b)  # the WAL counts against the cap
            capacity.make_room(self._file, cap[0], self.retention_s, est, self._dropped, cap[1])
        try:
            self._file.write(fn)
        except DiskFullError:
            # ENOSPC/EFBIG: shed per invariant 4 to make room inside the file, retry once.
            if self.disk_full_since is None:
                self.disk_full_since = time.monotonic()
            self.shed_for_space()
            self._file.write(fn)
        self.disk_full_since = None
        if not self.reserve_ok:
            self.reserve_ok = space.keep_reserve(self.path)
        del self._deferred[: len(deferred)]
        self._deferred_since = time.monotonic()  # what is left came during this commit

    def rule_states(self) -> dict[tuple[str, str], str]:
        bad: list[tuple[Any, ...]] = []
        with self._lock:
            out = history.rule_states(self.db, bad)
        if bad:  # the rule starts again for those devices, as if newly configured
            self._damaged("rule_state", len(bad), [])
            if not self.readonly:
                with contextlib.suppress(StoreError):
                    self._file.write(lambda db: history.drop_rule_states(db, bad))
        return out

    def add_outbox(
        self, rows: Sequence[tuple[int, str, str | None, str, str, str | bytes, float, float]]
    ) -> None:
        self._file.write(lambda db: self._insert_outbox(db, rows))

    def _insert_outbox(self, db: sqlite3.Connection, rows: Sequence[OutboxTuple]) -> None:
        self._next_seq = outbox.insert(db, self._next_seq, rows)

    # -- outbox --------------------------------------------------------------------------

    def outbox_fetch(self, limit: int, after: tuple[int, int] | None = None) -> list[OutboxRow]:
        """Oldest first within priority (alerts, events, readings), after the (priority, seq)
        `after`. Seq order is FCnt order per device. Two reads: alerts and events by their
        partial index, readings by seq. Only tests call it today (kept for tools): the
        forwarder reads with `outbox_fetch_urgent` and `outbox_fetch_readings`."""
        with self._lock:
            bad: list[int] = []
            rows = outbox.fetch(self.db, limit, after, bad)
            self._set_aside(bad)
            return rows

    def outbox_fetch_readings(self, limit: int, after_seq: int) -> list[tuple[int, str, Any]]:
        """The forwarder's reading cursor: (seq, topic, body) of readings after `after_seq`, in
        seq order (= FCnt order per device). Three columns in plain tuples: half the cost per
        row of full OutboxRows on a 50,000 rows/s drain."""
        with self._lock:
            while True:
                bad: list[int] = []
                rows = outbox.fetch_readings(self.db, limit, after_seq, bad)
                self._set_aside(bad)
                if rows or not bad:
                    return rows
                after_seq = max(bad)  # a whole read of damaged rows: the rest is behind them

    def outbox_drop_unreadable(self, seqs: Sequence[int]) -> None:
        """Rows the forwarder cannot read (a damaged stored item or text) leave the outbox,
        counted by kind for the next `data_dropped` event in the same transaction."""
        with self._lock:
            self._file.write(lambda db: outbox.drop_unreadable(db, seqs))
        self.drops_unreported = True

    def outbox_fetch_urgent(self, limit: int) -> list[OutboxRow]:
        """Alerts and events only (they overtake readings, invariant 3)."""
        with self._lock:
            bad: list[int] = []
            rows = outbox.fetch_urgent(self.db, limit, bad)
            self._set_aside(bad)
            return rows

    def _set_aside(self, seqs: list[int]) -> None:
        """Outbox rows with damaged text (store/damaged.py) leave the outbox one by one,
        counted as dropped (reason `unreadable`) for the next `data_dropped` event. Left in
        place when that cannot be written (read-only, disk full): skipped at every read."""
        if not seqs:
            return
        self._damaged("outbox", len(seqs), seqs[:10])
        if self.readonly:
            return
        try:
            self._file.write(lambda db: outbox.drop_unreadable(db, seqs))
        except StoreError:
            return
        self.drops_unreported = True

    def _damaged(self, table: str, n: int, keys: Sequence[Any]) -> None:
        self.damaged[table] = self.damaged.get(table, 0) + n
        log_event(log, logging.WARNING, "damaged_rows", table=table, count=n, keys=str(list(keys)))

    def outbox_depth(self) -> int:
        with self._lock:
            return outbox.depth(self.db)

    def outbox_delete(
        self, seqs: Sequence[int], defer_up_to: int = 0, older_than_s: float = 0.0
    ) -> None:
        """Delete acknowledged rows. With `defer_up_to`, rows wait (at most that many) to ride in
        the next ingest commit: one transaction instead of two per reading, about half the bytes
        written on an SD card. A crash before then only resends them (same ids, invariant 2).
        With `older_than_s` (a periodic flush), waiting rows are written on their own only once
        the oldest has waited that long: with uplinks every second, they always ride an ingest
        commit, and no fsync is spent on deletes alone."""
        with self._lock:
            if seqs and not self._deferred:
                self._deferred_since = time.monotonic()
            self._deferred.extend(seqs)
            if defer_up_to and len(self._deferred) < defer_up_to:
                return
            pending = list(self._deferred)
            if not pending:
                return
            if older_than_s and time.monotonic() - self._deferred_since < older_than_s:
                return
            runs = outbox.ranges(pending)
            self._file.write(lambda db: outbox.delete_ranges(db, runs))
            del self._deferred[: len(pending)]
            self._deferred_since = time.monotonic()

    def deferred_deletes(self) -> int:
        return len(self._deferred)

    _outbox_ranges = staticmethod(outbox.ranges)

    def outbox_stats(self) -> dict[str, Any]:
        with self._lock:
            return outbox.stats(self.db)

    # -- alerts / readings for the CLI ---------------------------------------------------

    def alerts(self, limit: int = 100, only_open: bool = False) -> list[dict[str, Any]]:
        bad: list[Any] = []
        with self._lock:
            rows = history.alerts(self.db, limit, only_open, bad)
        if bad:
            self._damaged(
                "alerts", len(bad), [damaged.text(bytes(str(r[0]), "utf-8")) for r in bad]
            )
        return [dict(r) for r in rows]

    def open_alert_count(self, limit: int = 100_000) -> int:
        """Open alerts, counted up to `limit`, without reading the rows."""
        with self._lock:
            return history.count_open_alerts(self.db, limit)

    def ack_alert(self, alert_id: str) -> bool:
        return bool(self._file.write(lambda db: history.ack_alert(db, alert_id)))

    def readings(
        self,
        dev_eui: bytes | None = None,
        since: float | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        bad: list[int] = []
        with self._lock:
            rows = history.readings(self.db, dev_eui, since, limit, after_seq, bad)
        out = history.reading_dicts(rows, after_seq is None, bad)
        if bad:  # the history copy stays in the file (the CLI opens it for reading only)
            self._damaged("readings", len(bad), bad[:10])
        return out

    def import_readings(self, rows: Sequence[Any], dry_run: bool = False) -> dict[str, Any]:
        """`readings import`: history rows (dev_eui, time, measurements) in one transaction, all
        or nothing, marked origin 'import', never in the outbox (store/imports.py). A dry run
        only counts (it works on a read-only store). Returns rows/new/present/devices/first/last."""
        if dry_run:
            with self._lock:
                return imports.import_rows(self.db, rows, True)
        return dict(self._file.write(lambda db: imports.import_rows(db, rows, False)))

    # -- gateways and the downlink queue -------------------------------------------------

    def save_gateway_stats(self, stats: dict[str, dict[str, Any]]) -> None:
        now = time.time()
        self._file.write(lambda db: gateways.save(db, stats, now))

    def gateway_stats(self) -> dict[str, Any]:
        with self._lock:
            return gateways.load(self.db)

    def queue_downlink(
        self, dev_eui: bytes, f_port: int, payload: bytes, confirmed: bool = False
    ) -> int:
        return int(
            self._file.write(
                lambda db: downlink_queue.enqueue(db, dev_eui, f_port, payload, confirmed)
            )
        )

    def pending_downlinks(self) -> list[dict[str, Any]]:
        with self._lock:
            return downlink_queue.pending(self.db)

    def mark_downlink_sent(self, seq: int, fcnt_down: int) -> None:
        self._file.write(lambda db: downlink_queue.mark_sent(db, seq, fcnt_down))

    def requeue_downlink(self, seq: int) -> dict[str, Any] | None:
        """Back to unsent (it never went on air): the entry, or None when it is gone."""
        self._file.write(lambda db: downlink_queue.requeue(db, seq))
        with self._lock:
            return downlink_queue.get(self.db, seq)

    # -- cap & retention (invariant 4) ---------------------------------------------------

    def enforce_cap(
        self,
        max_bytes: int,
        retention_s: float,
        now: float,
        extra_bytes: int = 0,
        reason: str = "disk_cap",
    ) -> dict[str, int]:
        """Invariant 4, by store/capacity.py: counts dropped by kind; `report_drops` turns the
        counts into one event row. Under the cap in force: `max_bytes`, or the room the
        filesystem leaves when smaller (reason disk_full); the reserve file goes when not even
        a delete can be written."""
        if extra_bytes:
            return capacity.enforce_cap(
                self._file, max_bytes, retention_s, now, self._dropped, extra_bytes, reason
            )
        out = capacity.shed_for_cap(self._file, max_bytes, retention_s, now, self._dropped, reason)
        self.reserve_ok = space.keep_reserve(self.path)  # given up, or free space ran short
        return out

    def make_space(self) -> dict[str, int]:
        """At start: shed to the cap in force (configured, or what a full disk leaves) by the
        eviction order, so a daemon killed on a full disk starts and drains (never a crash loop)."""
        out = self.enforce_cap(self.max_bytes or (1 << 62), self.retention_s, time.time())
        if not self.reserve_ok:
            self.reserve_ok = space.keep_reserve(self.path)
        return out

    def space_state(self) -> dict[str, Any]:
        """For `status` and `doctor`: the cap in force and why, free bytes, the reserve file."""
        cap = capacity.space_cap(self._file, self.max_bytes, tune_wal=False)  # any thread
        figs = space.fs_figures(self.path)
        return {
            "cap_bytes": cap[0] if cap else None,
            "limited_by": ("filesystem" if cap[1] == "disk_full" else "max_db_mb") if cap else None,
            "fs_free_bytes": figs[0] if figs else None,
            "reserve": space.reserve_path(self.path).exists(),
            "disk_full_s": (
                round(time.monotonic() - self.disk_full_since, 1)
                if self.disk_full_since is not None
                else None
            ),
        }

    def shed_for_space(self) -> dict[str, int]:
        """The filesystem refused a write: drop to 80% of what we hold so pages are reused."""
        out = capacity.shed_for_space(self._file, self.max_bytes, self.retention_s, self._dropped)
        self.reserve_ok = space.reserve_path(self.path).exists()
        return out

    def _dropped(self) -> None:
        self.drops_unreported = True

    def report_drops(self, make_row: Callable[[dict[str, Any]], OutboxTuple]) -> dict[str, Any]:
        """Move `meta.unreported_drops` into one outbox event row (one transaction); returns it."""
        out = dict(
            self._file.write(lambda db: drops.move_to_outbox(db, make_row, self._insert_outbox))
        )
        self.drops_unreported = False
        return out
