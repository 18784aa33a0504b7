"""SQLite store: devices, sessions, readings, outbox, alerts, rule state. WAL, group commit, cap.

Blocking API: the daemon calls it from one dedicated thread. Invariant 1 lives in `commit_batch`:
reading + outbox row + device FCnt (+ rule state + alerts) in ONE transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from gateway_agent.errors import DiskFullError, StoreError
from gateway_agent.logfmt import log_event
from gateway_agent.model import Alert, Device
from gateway_agent.secret import Secret
from gateway_agent.store.sqlbatch import insert_rows, update_rows

log = logging.getLogger(__name__)

PRIO_ALERT, PRIO_EVENT, PRIO_READING = 0, 1, 2
DROP_KINDS = ("history", "unsent_readings", "unsent_events", "unsent_alerts")
CAP_HIGH, CAP_LOW = 0.9, 0.75  # shed when past 90% of the cap, down to 75% (hysteresis)
# New files only (fixed at creation): a commit appends whole pages to the WAL, so smaller pages
# mean fewer bytes per commit on the SD card (docs/store-and-forward.md "SD-card wear").
PAGE_SIZE = 1024
OUTBOX_COLS = "priority, kind, dev_eui, topic, msg_id, body, created, created_mono"
OutboxTuple = tuple[int, str, str | None, str, str, str | bytes, float, float]


def _add_unreported(db: sqlite3.Connection, kind: str, n: int, reason: str) -> None:
    row = db.execute("SELECT value FROM meta WHERE key='unreported_drops'").fetchone()
    data: dict[str, Any] = json.loads(row[0]) if row else {}
    data[kind] = int(data.get(kind, 0)) + n
    reasons = set(data.get("reasons", []))
    reasons.add(reason)
    data["reasons"] = sorted(reasons)
    db.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('unreported_drops', ?)",
        (json.dumps(data),),
    )


# --------------------------------------------------------------------------- migrations

MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


def migration(
    version: int,
) -> Callable[[Callable[[sqlite3.Connection], None]], Callable[[sqlite3.Connection], None]]:
    def deco(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
        if version in MIGRATIONS:
            raise ValueError(f"duplicate migration {version}")
        MIGRATIONS[version] = fn
        return fn

    return deco


@migration(1)
def _m1(db: sqlite3.Connection) -> None:
    # SD wear: no UNIQUE(id) on readings (the FCnt check committed with each reading already
    # refuses a repeat) and no AUTOINCREMENT on outbox (Store keeps seq monotonic itself), so a
    # commit writes two fewer pages. Files made before keep both and work the same.
    db.executescript(
        """
        CREATE TABLE devices (
            dev_eui TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', class TEXT NOT NULL,
            codec TEXT, tags TEXT NOT NULL DEFAULT '[]', settings TEXT NOT NULL DEFAULT '{}',
            dev_addr TEXT, nwk_s_key BLOB, app_s_key BLOB, join_eui TEXT, app_key BLOB,
            relaxed_fcnt INTEGER NOT NULL DEFAULT 0,
            fcnt_up INTEGER, fcnt_down INTEGER NOT NULL DEFAULT 0, join_nonce INTEGER NOT NULL DEFAULT 0,
            origin TEXT NOT NULL DEFAULT 'cli', last_seen REAL, last_rssi REAL, last_snr REAL,
            last_values TEXT, created REAL NOT NULL, updated REAL NOT NULL
        );
        CREATE INDEX devices_addr ON devices(dev_addr);
        CREATE TABLE dev_nonces (
            dev_eui TEXT NOT NULL, dev_nonce INTEGER NOT NULL, time REAL NOT NULL,
            PRIMARY KEY (dev_eui, dev_nonce)
        ) WITHOUT ROWID;
        CREATE TABLE readings (
            seq INTEGER PRIMARY KEY, id TEXT NOT NULL, dev_eui TEXT NOT NULL,
            fcnt INTEGER NOT NULL, f_port INTEGER, time REAL NOT NULL, time_valid INTEGER NOT NULL,
            payload BLOB NOT NULL, measurements TEXT NOT NULL, flags TEXT NOT NULL,
            decode_error TEXT, rssi REAL, snr REAL, gateways INTEGER NOT NULL DEFAULT 1
        );
        CREATE INDEX readings_dev_time ON readings(dev_eui, time);
        CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY, priority INTEGER NOT NULL, kind TEXT NOT NULL,
            dev_eui TEXT, topic TEXT NOT NULL, msg_id TEXT NOT NULL, body TEXT NOT NULL,
            created REAL NOT NULL, created_mono REAL, attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX outbox_order ON outbox(priority, seq);
        CREATE TABLE alerts (
            id TEXT PRIMARY KEY, dev_eui TEXT NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL,
            severity TEXT NOT NULL, measurement TEXT, value REAL, time REAL NOT NULL,
            message TEXT NOT NULL DEFAULT '', acked INTEGER NOT NULL DEFAULT 0, acked_at REAL
        );
        CREATE INDEX alerts_time ON alerts(time);
        CREATE TABLE rule_state (
            rule TEXT NOT NULL, dev_eui TEXT NOT NULL, state TEXT NOT NULL,
            PRIMARY KEY (rule, dev_eui)
        ) WITHOUT ROWID;
        CREATE TABLE downlinks (
            seq INTEGER PRIMARY KEY, dev_eui TEXT NOT NULL, f_port INTEGER NOT NULL,
            payload BLOB NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL,
            sent REAL, fcnt_down INTEGER
        );
        CREATE TABLE gateways (gateway_id TEXT PRIMARY KEY, stats TEXT NOT NULL, updated REAL NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """
    )


@migration(2)
def _m2(db: sqlite3.Connection) -> None:
    """Readings leave the outbox index: they are read and deleted by seq (the table's own
    order), so only alerts and events need one. A reading's insert and delete then touch one
    b-tree, not two: ~23 % less CPU per delete on a drain, fewer pages written per commit."""
    db.executescript(
        f"""
        DROP INDEX IF EXISTS outbox_order;
        CREATE INDEX outbox_urgent ON outbox(priority, seq) WHERE priority < {PRIO_READING};
        """
    )


SCHEMA_VERSION = max(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> int:
    """Apply forward migrations; returns the version now in the file. Refuses a newer file."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT max(version) FROM schema_version").fetchone()
    current = row[0] or 0
    if current > SCHEMA_VERSION:
        raise StoreError(f"database schema {current} is newer than this agent ({SCHEMA_VERSION})")
    for v in range(current + 1, SCHEMA_VERSION + 1):
        with db:
            MIGRATIONS[v](db)
            db.execute("INSERT INTO schema_version(version) VALUES (?)", (v,))
    return SCHEMA_VERSION


# --------------------------------------------------------------------------- values


class OutboxRow(NamedTuple):
    """A tuple, made by the C tuple constructor: the drain reads ~50,000 rows/s (a frozen
    dataclass cost ~1 us a row in object.__setattr__)."""

    seq: int
    priority: int
    kind: str  # "up" | "alert" | "event"
    dev_eui: str | None
    topic: str  # suffix under {prefix}/{gateway_id}/
    msg_id: str
    body: str | bytes  # JSON text, or a CBOR item (wire.cbor_item) for format = "cbor"
    created: float


@dataclass(slots=True)
class Batch:
    """Everything one group commit writes. Built by the ingest loop, committed atomically."""

    readings: list[tuple[Any, ...]] = field(default_factory=list)  # rows for `readings`
    outbox: list[OutboxTuple] = field(default_factory=list)
    fcnt_up: dict[str, int] = field(default_factory=dict)  # dev_eui hex -> FCnt32
    seen: dict[str, tuple[float, float | None, float | None, str]] = field(default_factory=dict)
    rule_state: dict[tuple[str, str], str | None] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    dev_nonces: list[tuple[str, int, float]] = field(default_factory=list)
    sessions: list[tuple[str, str, bytes, bytes, int]] = field(default_factory=list)  # OTAA joins

    def __len__(self) -> int:
        return len(self.readings) + len(self.outbox) + len(self.alerts) + len(self.sessions)


def _hex(b: bytes | None) -> str | None:
    return b.hex() if b is not None else None


def _key(b: Secret | None) -> bytes | None:
    return b.reveal_bytes() if b is not None else None


def _secret(b: bytes | None) -> Secret | None:
    return Secret(bytes(b)) if b is not None else None


# --------------------------------------------------------------------------- store


class Store:
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
        self._wal_limit = 4 * 1024 * 1024
        self._deferred: list[int] = []  # acked outbox seqs riding in the next commit
        self._deferred_since = 0.0  # monotonic: when the oldest of them was acked (about)
        self._page_size = PAGE_SIZE
        self._next_seq = 1  # outbox seqs only grow while this process lives: see _insert_outbox
        self._lock = threading.RLock()
        if readonly:
            uri = f"file:{self.path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            self.db = sqlite3.connect(
                self.path, check_same_thread=False, timeout=30, isolation_level=None
            )
            if self.db.execute("PRAGMA page_count").fetchone()[0] == 0:
                # Only settable before the first table. auto_vacuum lets the cap give pages
                # back to the FS.
                self.db.execute(f"PRAGMA page_size={int(page_size)}")
                self.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self.db.execute("PRAGMA journal_mode=WAL")
            self._page_size = int(self.db.execute("PRAGMA page_size").fetchone()[0])
            self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
            self.db.execute("PRAGMA foreign_keys=OFF")
            # The WAL counts against the cap: checkpoint at 1/8 of it (SQLite default 4 MB at most).
            wal_bytes = 4 * 1024 * 1024
            if max_bytes:
                wal_bytes = max(64 * 1024, min(wal_bytes, max_bytes // 8))
            self._wal_limit = wal_bytes
            self.db.execute(f"PRAGMA wal_autocheckpoint={wal_bytes // self._page_size}")
            self.db.execute(f"PRAGMA journal_size_limit={wal_bytes}")
            migrate(self.db)
            self._next_seq = self._max_outbox_seq() + 1
            self.fix_permissions()
        self.db.row_factory = sqlite3.Row

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
        with self._lock:
            try:
                if not self.readonly:
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self.db.close()

    def quick_check(self) -> str:
        with self._lock:
            return str(self.db.execute("PRAGMA quick_check").fetchone()[0])

    def size_bytes(self) -> int:
        """Bytes the database occupies on disk (main file + WAL)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return total

    def _footprint(self) -> int:
        """What DB + WAL can reach before the WAL is next truncated: pages that so far live only
        in the WAL extend the main file at the checkpoint, while the WAL is still there."""
        with self._lock:
            pages = int(self.db.execute("PRAGMA page_count").fetchone()[0])
        return max(self._file_bytes(), pages * self._page_size) + self._wal_bytes()

    def _file_bytes(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def used_bytes(self) -> int:
        """Bytes in live pages (excludes the freelist, which SQLite reuses before growing)."""
        with self._lock:
            pc = self.db.execute("PRAGMA page_count").fetchone()[0]
            fl = self.db.execute("PRAGMA freelist_count").fetchone()[0]
            ps = self.db.execute("PRAGMA page_size").fetchone()[0]
        return int((pc - fl) * ps)

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    out = fn(self.db)
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                self.db.execute("COMMIT")
                return out
            except sqlite3.OperationalError as e:
                msg = str(e).lower()
                if self.db.in_transaction:
                    try:
                        self.db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                if "full" in msg or "disk i/o" in msg:
                    raise DiskFullError(str(e)) from e
                raise StoreError(str(e)) from e
            except sqlite3.DatabaseError as e:
                raise StoreError(str(e)) from e

    def _max_outbox_seq(self) -> int:
        top = self.db.execute("SELECT max(seq) FROM outbox").fetchone()[0] or 0
        with contextlib.suppress(sqlite3.Error):  # files made with AUTOINCREMENT
            row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='outbox'").fetchone()
            top = max(top, row[0] if row else 0)
        return int(top)

    def _insert_outbox(self, db: sqlite3.Connection, rows: Sequence[OutboxTuple]) -> None:
        """Append outbox rows. Seq never goes back while this process lives, even when the
        table empties: the forwarder's cursor, its busy set and deferred deletes name rows by
        seq, and plain rowids restart at max(seq)+1. The first row sets the floor; the rest
        follow it (max+1). Another process inserting meanwhile only moves max(seq) up."""
        if not rows:
            return
        db.execute(
            f"INSERT INTO outbox(seq, {OUTBOX_COLS}) VALUES"
            " (max(?, coalesce((SELECT max(seq) FROM outbox), 0) + 1), ?,?,?,?,?,?,?,?)",
            (self._next_seq, *rows[0]),
        )
        if len(rows) > 1:
            insert_rows(db, f"INSERT INTO outbox({OUTBOX_COLS})", rows[1:])
        self._next_seq = int(db.execute("SELECT last_insert_rowid()").fetchone()[0]) + 1

    # -- meta ----------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)
            )
        )

    # -- devices -------------------------------------------------------------------------

    def upsert_device(self, dev: Device, origin: str = "cli") -> None:
        self.upsert_devices([dev], origin)

    def upsert_devices(self, devs: Iterable[Device], origin: str = "cli") -> int:
        now = time.time()

        def fn(db: sqlite3.Connection) -> int:
            n = 0
            for d in devs:
                old = db.execute(
                    "SELECT dev_addr, nwk_s_key, app_s_key, app_key FROM devices WHERE dev_eui=?",
                    (d.dev_eui.hex(),),
                ).fetchone()
                keys_changed = old is None or (
                    old[0] != _hex(d.dev_addr)
                    or old[1] != _key(d.nwk_s_key)
                    or old[2] != _key(d.app_s_key)
                )
                if d.activation == "otaa" and old is not None and old[3] == _key(d.app_key):
                    keys_changed = False  # keep the joined session
                db.execute(
                    """INSERT INTO devices(dev_eui, name, class, codec, tags, settings, dev_addr,
                         nwk_s_key, app_s_key, join_eui, app_key, relaxed_fcnt, origin, created, updated)
                       VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                       ON CONFLICT(dev_eui) DO UPDATE SET name=excluded.name, class=excluded.class,
                         codec=excluded.codec, tags=excluded.tags, settings=excluded.settings,
                         join_eui=excluded.join_eui, app_key=excluded.app_key,
                         relaxed_fcnt=excluded.relaxed_fcnt, origin=excluded.origin, updated=excluded.updated""",
                    (
                        d.dev_eui.hex(),
                        d.name,
                        d.device_class,
                        d.codec,
                        json.dumps(list(d.tags)),
                        json.dumps(dict(d.settings)),
                        _hex(d.dev_addr),
                        _key(d.nwk_s_key),
                        _key(d.app_s_key),
                        _hex(d.join_eui),
                        _key(d.app_key),
                        int(d.relaxed_fcnt),
                        origin,
                        now,
                        now,
                    ),
                )
                if keys_changed and d.activation == "abp":
                    # A new ABP session (new keys or address) starts its counters afresh.
                    db.execute(
                        "UPDATE devices SET dev_addr=?, nwk_s_key=?, app_s_key=?, fcnt_up=NULL, fcnt_down=0 "
                        "WHERE dev_eui=?",
                        (_hex(d.dev_addr), _key(d.nwk_s_key), _key(d.app_s_key), d.dev_eui.hex()),
                    )
                n += 1
            return n

        return int(self._write(fn))

    def remove_device(self, dev_eui: bytes) -> bool:
        def fn(db: sqlite3.Connection) -> bool:
            cur = db.execute("DELETE FROM devices WHERE dev_eui=?", (dev_eui.hex(),))
            db.execute("DELETE FROM rule_state WHERE dev_eui=?", (dev_eui.hex(),))
            return cur.rowcount > 0

        return bool(self._write(fn))

    def sync_devices(self, devs: Sequence[Device], origin: str = "file") -> tuple[int, int]:
        """Make the `origin` devices exactly `devs`: upsert them, remove the ones no longer listed."""
        self.upsert_devices(devs, origin)
        keep = {d.dev_eui.hex() for d in devs}
        with self._lock:
            stale = [
                r[0]
                for r in self.db.execute("SELECT dev_eui FROM devices WHERE origin=?", (origin,))
            ]
        removed = 0
        for eui in stale:
            if eui not in keep:
                removed += self.remove_device(bytes.fromhex(eui))
        return len(devs), removed

    @staticmethod
    def _device_from_row(r: sqlite3.Row) -> Device:
        return Device(
            dev_eui=bytes.fromhex(r["dev_eui"]),
            name=r["name"],
            device_class=r["class"],
            codec=r["codec"],
            tags=tuple(json.loads(r["tags"])),
            settings=json.loads(r["settings"]),
            dev_addr=bytes.fromhex(r["dev_addr"]) if r["dev_addr"] else None,
            nwk_s_key=_secret(r["nwk_s_key"]),
            app_s_key=_secret(r["app_s_key"]),
            join_eui=bytes.fromhex(r["join_eui"]) if r["join_eui"] else None,
            app_key=_secret(r["app_key"]),
            relaxed_fcnt=bool(r["relaxed_fcnt"]),
        )

    def devices(self) -> list[tuple[Device, dict[str, Any]]]:
        """Every device with its runtime state (fcnt_up, fcnt_down, last_seen, ...)."""
        with self._lock:
            rows = self.db.execute("SELECT * FROM devices ORDER BY dev_eui").fetchall()
        out = []
        for r in rows:
            st = {
                k: r[k]
                for k in (
                    "fcnt_up",
                    "fcnt_down",
                    "join_nonce",
                    "origin",
                    "last_seen",
                    "last_rssi",
                    "last_snr",
                )
            }
            st["last_values"] = json.loads(r["last_values"]) if r["last_values"] else {}
            out.append((self._device_from_row(r), st))
        return out

    def device(self, dev_eui: bytes) -> tuple[Device, dict[str, Any]] | None:
        for d, st in self.devices_where("dev_eui=?", (dev_eui.hex(),)):
            return d, st
        return None

    def devices_where(
        self, where: str, args: tuple[Any, ...]
    ) -> list[tuple[Device, dict[str, Any]]]:
        with self._lock:
            rows = self.db.execute(f"SELECT * FROM devices WHERE {where}", args).fetchall()
        return [
            (
                self._device_from_row(r),
                {
                    "fcnt_up": r["fcnt_up"],
                    "fcnt_down": r["fcnt_down"],
                    "join_nonce": r["join_nonce"],
                },
            )
            for r in rows
        ]

    def used_dev_nonces(self, dev_eui: bytes) -> set[int]:
        with self._lock:
            return {
                r[0]
                for r in self.db.execute(
                    "SELECT dev_nonce FROM dev_nonces WHERE dev_eui=?", (dev_eui.hex(),)
                )
            }

    def bump_fcnt_down(self, dev_eui: bytes) -> int:
        """Increment and persist FCntDown BEFORE the downlink is sent (LORAWAN.md 5.2); returns the value to use."""

        def fn(db: sqlite3.Connection) -> int:
            row = db.execute(
                "SELECT fcnt_down FROM devices WHERE dev_eui=?", (dev_eui.hex(),)
            ).fetchone()
            if row is None:
                raise StoreError(f"unknown device {dev_eui.hex()}")
            db.execute("UPDATE devices SET fcnt_down=fcnt_down+1 WHERE dev_eui=?", (dev_eui.hex(),))
            return int(row[0])

        return int(self._write(fn))

    def next_join_nonce(self, dev_eui: bytes) -> int:
        def fn(db: sqlite3.Connection) -> int:
            db.execute(
                "UPDATE devices SET join_nonce=join_nonce+1 WHERE dev_eui=?", (dev_eui.hex(),)
            )
            row = db.execute(
                "SELECT join_nonce FROM devices WHERE dev_eui=?", (dev_eui.hex(),)
            ).fetchone()
            return int(row[0])

        return int(self._write(fn))

    # -- ingest --------------------------------------------------------------------------

    def commit_batch(self, b: Batch) -> None:
        """One transaction: readings, outbox rows, FCnts, rule state, alerts, joins (invariant 1)."""

        deferred = list(self._deferred)

        def fn(db: sqlite3.Connection) -> None:
            if deferred:
                db.executemany("DELETE FROM outbox WHERE seq=?", [(s,) for s in deferred])
            if b.sessions:
                db.executemany(
                    "UPDATE devices SET dev_addr=?, nwk_s_key=?, app_s_key=?, fcnt_up=NULL, fcnt_down=0, "
                    "join_nonce=? WHERE dev_eui=?",
                    [(addr, nk, ak, jn, eui) for eui, addr, nk, ak, jn in b.sessions],
                )
            if b.dev_nonces:
                db.executemany("INSERT OR IGNORE INTO dev_nonces VALUES (?,?,?)", b.dev_nonces)
            insert_rows(
                db,
                "INSERT OR IGNORE INTO readings(id, dev_eui, fcnt, f_port, time, time_valid, payload,"
                " measurements, flags, decode_error, rssi, snr, gateways)",
                b.readings,
            )
            self._insert_outbox(db, b.outbox)
            update_rows(db, "devices", "dev_eui", ("fcnt_up",), list(b.fcnt_up.items()))
            update_rows(
                db,
                "devices",
                "dev_eui",
                ("last_seen", "last_rssi", "last_snr", "last_values"),
                [(e, *seen) for e, seen in b.seen.items()],
            )
            for (rule, eui), st in b.rule_state.items():
                if st is None:
                    db.execute("DELETE FROM rule_state WHERE rule=? AND dev_eui=?", (rule, eui))
                else:
                    db.execute("INSERT OR REPLACE INTO rule_state VALUES (?,?,?)", (rule, eui, st))
            if b.alerts:
                db.executemany(
                    "INSERT OR IGNORE INTO alerts(id, dev_eui, rule, state, severity, measurement, value, time,"
                    " message) VALUES (?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            a.id,
                            a.dev_eui.hex(),
                            a.rule,
                            a.state,
                            a.severity,
                            a.measurement,
                            a.value,
                            a.time,
                            a.message,
                        )
                        for a in b.alerts
                    ],
                )

        if self.max_bytes:
            # A commit dirties whole pages (rows, two indexes, devices): ~3x its raw bytes land
            # in the WAL before the next checkpoint, and the WAL counts against the cap.
            est = (sum(len(r[5]) for r in b.outbox) + len(b.readings) * 300) * 3
            if self._wal_bytes() + est > self._wal_limit:
                self.checkpoint()
            if self._footprint() + est > self.max_bytes * CAP_HIGH:
                self.enforce_cap(self.max_bytes, self.retention_s, time.time(), extra_bytes=est)
        try:
            self._write(fn)
        except DiskFullError:
            # ENOSPC/EFBIG: shed per invariant 4 to make room inside the file, retry once.
            if self.disk_full_since is None:
                self.disk_full_since = time.monotonic()
            self.shed_for_space()
            self._write(fn)
        self.disk_full_since = None
        del self._deferred[: len(deferred)]
        self._deferred_since = time.monotonic()  # what is left came during this commit

    def shed_for_space(self) -> dict[str, int]:
        """The filesystem refused a write: drop to 80% of what we hold so pages are reused."""
        self.checkpoint()
        target = int(self.size_bytes() * 0.8)
        if self.max_bytes:
            target = min(target, self.max_bytes)
        try:
            return self.enforce_cap(target, self.retention_s, time.time(), reason="disk_full")
        except StoreError:
            return {}

    def rule_states(self) -> dict[tuple[str, str], str]:
        with self._lock:
            return {
                (r[0], r[1]): r[2]
                for r in self.db.execute("SELECT rule, dev_eui, state FROM rule_state")
            }

    def add_outbox(
        self, rows: Sequence[tuple[int, str, str | None, str, str, str | bytes, float, float]]
    ) -> None:
        self._write(lambda db: self._insert_outbox(db, rows))

    # -- outbox --------------------------------------------------------------------------

    def outbox_fetch(self, limit: int, after: tuple[int, int] | None = None) -> list[OutboxRow]:
        """Oldest first within priority (alerts, events, readings), after the (priority, seq)
        `after`. Seq order is FCnt order per device. Two reads: alerts and events by their
        partial index, readings by seq."""
        cols = "SELECT seq, priority, kind, dev_eui, topic, msg_id, body, created FROM outbox"
        prio, seq = after if after is not None else (-1, -1)
        with self._lock:
            cur = self.db.cursor()
            cur.row_factory = None  # plain tuples: no sqlite3.Row per row
            rows = []
            if prio < PRIO_READING:
                rows = cur.execute(
                    f"{cols} WHERE priority < {PRIO_READING} AND (priority, seq) > (?, ?)"
                    " ORDER BY priority, seq LIMIT ?",
                    (prio, seq, limit),
                ).fetchall()
            if len(rows) < limit:
                rows += cur.execute(
                    f"{cols} WHERE priority = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (PRIO_READING, seq if prio >= PRIO_READING else -1, limit - len(rows)),
                ).fetchall()
        return list(map(OutboxRow._make, rows))

    def outbox_fetch_readings(self, limit: int, after_seq: int) -> list[tuple[int, str, Any]]:
        """The forwarder's reading cursor: (seq, topic, body) of readings after `after_seq`, in
        seq order (= FCnt order per device). Three columns in plain tuples: half the cost per
        row of full OutboxRows on a 50,000 rows/s drain."""
        with self._lock:
            cur = self.db.cursor()
            cur.row_factory = None
            return cur.execute(
                "SELECT seq, topic, body FROM outbox WHERE priority = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (PRIO_READING, after_seq, limit),
            ).fetchall()

    def outbox_drop_unreadable(self, seqs: Sequence[int]) -> None:
        """Rows the forwarder cannot read (a damaged stored item or text) leave the outbox,
        counted by kind for the next `data_dropped` event in the same transaction."""

        def drop(db: sqlite3.Connection) -> None:
            by_kind = {PRIO_READING: 0, PRIO_EVENT: 0, PRIO_ALERT: 0}
            for a, b in self._outbox_ranges(seqs):
                for prio, n in db.execute(
                    "SELECT priority, count(*) FROM outbox WHERE seq BETWEEN ? AND ?"
                    " GROUP BY priority",
                    (a, b),
                ):
                    by_kind[prio] = by_kind.get(prio, 0) + int(n)
                db.execute("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", (a, b))
            for prio, kind in (
                (PRIO_READING, "unsent_readings"),
                (PRIO_EVENT, "unsent_events"),
                (PRIO_ALERT, "unsent_alerts"),
            ):
                if by_kind.get(prio):
                    _add_unreported(db, kind, by_kind[prio], "unreadable")

        with self._lock:
            self._write(drop)
        self.drops_unreported = True

    def outbox_fetch_urgent(self, limit: int) -> list[OutboxRow]:
        """Alerts and events only (they overtake readings, invariant 3). The bound is written
        out so that SQLite can prove the partial index outbox_urgent covers the query."""
        sql = (
            "SELECT seq, priority, kind, dev_eui, topic, msg_id, body, created FROM outbox"
            f" WHERE priority < {PRIO_READING} ORDER BY priority, seq LIMIT ?"
        )
        with self._lock:
            rows = self.db.execute(sql, (limit,)).fetchall()
        return [OutboxRow._make(r) for r in rows]

    def outbox_depth(self) -> int:
        with self._lock:
            return int(self.db.execute("SELECT count(*) FROM outbox").fetchone()[0])

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
            ranges = self._outbox_ranges(pending)
            self._write(
                lambda db: db.executemany("DELETE FROM outbox WHERE seq BETWEEN ? AND ?", ranges)
            )
            del self._deferred[: len(pending)]
            self._deferred_since = time.monotonic()

    def deferred_deletes(self) -> int:
        return len(self._deferred)

    @staticmethod
    def _outbox_ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
        """Acked seqs as (first, last) runs: a drained backlog is a few ranges, and a range
        DELETE walks the b-tree once instead of once per row (hil/bench/drain.py). Halves
        until a part has no gap: steps per run, not per seq (50,000 seqs/s on a drain)."""
        s = sorted(set(seqs))
        out: list[tuple[int, int]] = []

        def split(lo: int, hi: int) -> None:
            if s[hi - 1] - s[lo] == hi - 1 - lo:  # no gap
                if out and out[-1][1] + 1 == s[lo]:
                    out[-1] = (out[-1][0], s[hi - 1])
                else:
                    out.append((s[lo], s[hi - 1]))
                return
            mid = (lo + hi) // 2
            split(lo, mid)
            split(mid, hi)

        if s:
            split(0, len(s))
        return out

    def outbox_stats(self) -> dict[str, Any]:
        with self._lock:
            rows = self.db.execute(
                "SELECT kind, count(*), min(created) FROM outbox GROUP BY kind"
            ).fetchall()
        by_kind = {r[0]: r[1] for r in rows}
        oldest = min((r[2] for r in rows), default=None)
        return {"depth": sum(by_kind.values()), "by_kind": by_kind, "oldest": oldest}

    # -- alerts / readings for the CLI ---------------------------------------------------

    def alerts(self, limit: int = 100, only_open: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            where = " WHERE state='raised' AND acked=0" if only_open else ""
            rows = self.db.execute(
                f"SELECT * FROM alerts{where} ORDER BY time DESC LIMIT ?", (limit,)
            ).fetchall()
        return [dict(r) for r in rows]

    def ack_alert(self, alert_id: str) -> bool:
        return bool(
            self._write(
                lambda db: (
                    db.execute(
                        "UPDATE alerts SET acked=1, acked_at=? WHERE id=?",  # exact: the CLI resolves prefixes
                        (time.time(), alert_id),
                    ).rowcount
                    > 0
                )
            )
        )

    def readings(
        self,
        dev_eui: bytes | None = None,
        since: float | None = None,
        limit: int = 1000,
        after_seq: int | None = None,
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        if dev_eui is not None:
            where.append("dev_eui=?")
            args.append(dev_eui.hex())
        if since is not None:
            where.append("time>=?")
            args.append(since)
        if after_seq is not None:
            where.append("seq>?")
            args.append(after_seq)
        sql = "SELECT * FROM readings" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY seq DESC LIMIT ?" if after_seq is None else " ORDER BY seq LIMIT ?"
        with self._lock:
            rows = self.db.execute(sql, (*args, limit)).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["payload"] = bytes(d["payload"]).hex()
            d["measurements"] = json.loads(d["measurements"])
            d["flags"] = json.loads(d["flags"])
            out.append(d)
        if after_seq is None:
            out.reverse()
        return out

    def save_gateway_stats(self, stats: dict[str, dict[str, Any]]) -> None:
        now = time.time()
        self._write(
            lambda db: db.executemany(
                "INSERT OR REPLACE INTO gateways VALUES (?,?,?)",
                [(gid, json.dumps(st), now) for gid, st in stats.items()],
            )
        )

    def gateway_stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                r[0]: json.loads(r[1])
                for r in self.db.execute("SELECT gateway_id, stats FROM gateways")
            }

    def queue_downlink(
        self, dev_eui: bytes, f_port: int, payload: bytes, confirmed: bool = False
    ) -> int:
        return int(
            self._write(
                lambda db: (
                    db.execute(
                        "INSERT INTO downlinks(dev_eui, f_port, payload, confirmed, created) VALUES (?,?,?,?,?)",
                        (dev_eui.hex(), f_port, payload, int(confirmed), time.time()),
                    ).lastrowid
                )
            )
        )

    def pending_downlinks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                dict(r)
                for r in self.db.execute("SELECT * FROM downlinks WHERE sent IS NULL ORDER BY seq")
            ]

    def mark_downlink_sent(self, seq: int, fcnt_down: int) -> None:
        self._write(
            lambda db: db.execute(
                "UPDATE downlinks SET sent=?, fcnt_down=? WHERE seq=?",
                (time.time(), fcnt_down, seq),
            )
        )

    def requeue_downlink(self, seq: int) -> dict[str, Any] | None:
        """Back to unsent (it never went on air): the entry, or None when it is gone."""
        self._write(
            lambda db: db.execute(
                "UPDATE downlinks SET sent=NULL, fcnt_down=NULL WHERE seq=?", (seq,)
            )
        )
        with self._lock:
            row = self.db.execute("SELECT * FROM downlinks WHERE seq=?", (seq,)).fetchone()
        return dict(row) if row is not None else None

    # -- cap & retention (invariant 4) ---------------------------------------------------

    def enforce_cap(
        self,
        max_bytes: int,
        retention_s: float,
        now: float,
        extra_bytes: int = 0,
        reason: str = "disk_cap",
    ) -> dict[str, int]:
        """Invariant 4. Drop history past retention; then, over the cap, history oldest first, then
        the oldest unsent readings, then events, and alerts only when nothing else is left. Each
        delete records its counts in `meta.unreported_drops` in the same transaction, so a drop is
        never forgotten by a crash; `report_drops` turns them into one event row. Returns counts."""
        dropped = dict.fromkeys(DROP_KINDS, 0)
        if retention_s > 0:
            dropped["history"] += self._write(
                lambda db: (
                    db.execute("DELETE FROM readings WHERE time < ?", (now - retention_s,)).rowcount
                )
            )
        expired = dropped["history"]
        # Room for the coming commit, but never shed below a quarter of the cap for a guess.
        target = max(int(max_bytes * CAP_LOW) - extra_bytes, max_bytes // 4)
        steps: tuple[tuple[str, str, tuple[int, ...]], ...] = (
            (
                "history",
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)",
                (),
            ),
            (
                "unsent_readings",
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                f"WHERE priority={PRIO_READING} ORDER BY seq LIMIT ?)",
                (),
            ),
            (
                "unsent_events",  # the bound written out: the partial index outbox_urgent
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox "
                f"WHERE priority={PRIO_EVENT} ORDER BY seq LIMIT ?)",
                (),
            ),
            (
                "unsent_alerts",
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                (),
            ),
        )
        if extra_bytes:
            steps = steps[:2]  # a forecast never costs an event or an alert, only a real excess
        if self.used_bytes() + self._wal_bytes() > target:
            self.checkpoint()
        for kind, sql, args in steps:
            while self.used_bytes() + self._wal_bytes() > target:
                if self._wal_bytes() > 64 * 1024:
                    self.checkpoint()  # the WAL our own deletes grew must not cost more rows
                    if self.used_bytes() + self._wal_bytes() <= target:
                        break
                chunk = self._chunk(kind, target)

                def fn(
                    db: sqlite3.Connection,
                    sql: str = sql,
                    args: Any = args,
                    kind: str = kind,
                    chunk: int = chunk,
                ) -> int:
                    n = int(db.execute(sql, (*args, chunk)).rowcount)
                    if n:
                        _add_unreported(db, kind, n, reason)
                    return n

                n = self._write(fn)
                dropped[kind] += n
                if not n:
                    break
                self.drops_unreported = True
                if self._wal_bytes() > self._wal_limit // 2:
                    self.checkpoint()
        if sum(dropped.values()) > expired:
            # Shed for the cap: give the freed pages back to the FS. Rows past retention only
            # leave pages that the next commits reuse: no checkpoint and no page moves (wear).
            self._vacuum()
        return dropped

    def _vacuum(self) -> None:
        """Return free pages to the FS in steps: every page moved is a WAL frame, and the WAL
        counts against the cap until the checkpoint after each step."""
        step = max(16, self._wal_limit // (2 * self._page_size))
        self.checkpoint()
        for _ in range(10_000):
            with self._lock:
                try:
                    if not self.db.execute("PRAGMA freelist_count").fetchone()[0]:
                        break
                    # executescript steps the pragma to the end; execute() frees one page only.
                    self.db.executescript(f"PRAGMA incremental_vacuum({step});")
                except sqlite3.Error:
                    break
            self.checkpoint()
        self.checkpoint()

    def _chunk(self, kind: str, target: int) -> int:
        """Rows to delete per step: about the excess, so a small cap does not lose extra rows."""
        with self._lock:
            table = "readings" if kind == "history" else "outbox"
            n = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        if not n:
            return 1
        per_row = max(64, self.used_bytes() // max(1, n))
        excess = self.used_bytes() + self._wal_bytes() - target
        # A delete copies its pages into the WAL: keep one step well inside the WAL budget.
        most = max(1, self._wal_limit // (2 * per_row))
        return int(max(1, min(2000, most, excess // per_row + 1)))

    def report_drops(self, make_row: Callable[[dict[str, Any]], OutboxTuple]) -> dict[str, Any]:
        """Move `meta.unreported_drops` into one outbox event row (one transaction); returns it."""

        def fn(db: sqlite3.Connection) -> dict[str, Any]:
            row = db.execute("SELECT value FROM meta WHERE key='unreported_drops'").fetchone()
            if row is None:
                return {}
            data = json.loads(row[0])
            self._insert_outbox(db, [make_row(data)])
            db.execute("DELETE FROM meta WHERE key='unreported_drops'")
            return dict(data)

        out = dict(self._write(fn))
        self.drops_unreported = False
        return out

    def checkpoint(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(str(self.path) + "-wal")
        except OSError:
            return 0


def log_store_event(event: str, **fields: Any) -> None:
    log_event(log, logging.WARNING, event, **fields)
