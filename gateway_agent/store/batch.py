"""The group commit: one `Batch` of uplinks written in one transaction (invariant 1): readings,
outbox rows, device FCnts and last-seen, rule state, alerts, joins, downlink queue marks, plus
deferred outbox acks."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway_agent.model import Alert
from gateway_agent.store import queue
from gateway_agent.store.downlink_queue import mark_downlinks
from gateway_agent.store.outbox import OutboxTuple, delete_seqs
from gateway_agent.store.sqlbatch import insert_rows, update_rows


@dataclass(slots=True)
class Batch:
    """Everything one group commit writes. Built by the ingest loop, committed atomically."""

    readings: list[tuple[Any, ...]] = field(default_factory=list)  # rows for `readings`
    outbox: list[OutboxTuple] = field(default_factory=list)
    queued: list[queue.QueueTuple] = field(default_factory=list)  # [[outputs]] and the relay
    fcnt_up: dict[str, int] = field(default_factory=dict)  # dev_eui hex -> FCnt32
    # dev_eui hex -> the session's counter-reset epoch (relaxed mode; part of reading ids)
    fcnt_resets: dict[str, int] = field(default_factory=dict)
    seen: dict[str, tuple[float, float | None, float | None, str]] = field(default_factory=dict)
    rule_state: dict[tuple[str, str], str | None] = field(default_factory=dict)
    alerts: list[Alert] = field(default_factory=list)
    dev_nonces: list[tuple[str, int, float]] = field(default_factory=list)
    sessions: list[tuple[str, str, bytes, bytes, int]] = field(default_factory=list)  # OTAA joins
    # dev_eui hex -> the next FCntDown, persisted before the answer goes out (LORAWAN.md 5.2)
    fcnt_down: dict[str, int] = field(default_factory=dict)
    # downlink queue seq -> (sent time, FCntDown) once it rides in a frame; None: unsent again
    downlinks_sent: dict[int, tuple[float, int] | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return (
            len(self.readings)
            + len(self.outbox)
            + len(self.alerts)
            + len(self.sessions)
            + len(self.queued)
        )


def wal_estimate(b: Batch) -> int:
    """Bytes the commit may add to the WAL. A commit dirties whole pages (rows, two indexes,
    devices): ~3x its raw bytes land in the WAL before the next checkpoint."""
    out = sum(len(r[5]) for r in b.outbox) + sum(len(r[5]) + 40 for r in b.queued)
    return (out + len(b.readings) * 300) * 3


def write(
    db: sqlite3.Connection,
    b: Batch,
    deferred: Sequence[int],
    insert_outbox: Callable[[sqlite3.Connection, Sequence[OutboxTuple]], None],
) -> None:
    """The statements of one group commit, inside the caller's transaction. `deferred` are
    acked outbox seqs riding along; `insert_outbox` appends outbox rows (it keeps seq rising)."""
    if deferred:
        delete_seqs(db, deferred)
    if b.sessions:
        db.executemany(
            "UPDATE devices SET dev_addr=?, nwk_s_key=?, app_s_key=?, fcnt_up=NULL, fcnt_down=0, "
            "fcnt_resets=0, join_nonce=? WHERE dev_eui=?",
            [(addr, nk, ak, jn, eui) for eui, addr, nk, ak, jn in b.sessions],
        )
    if b.dev_nonces:
        db.executemany("INSERT OR IGNORE INTO dev_nonces VALUES (?,?,?)", b.dev_nonces)
    if b.fcnt_down:
        # After the joins (which start at 0); max(): a FCntDown never goes back in one session.
        db.executemany(
            "UPDATE devices SET fcnt_down=max(fcnt_down, ?) WHERE dev_eui=?",
            [(n, eui) for eui, n in b.fcnt_down.items()],
        )
    if b.downlinks_sent:
        mark_downlinks(db, b.downlinks_sent)
    insert_rows(
        db,
        "INSERT OR IGNORE INTO readings(id, dev_eui, fcnt, f_port, time, time_valid, payload,"
        " measurements, flags, decode_error, rssi, snr, gateways)",
        b.readings,
    )
    insert_outbox(db, b.outbox)
    # After the joins, which set fcnt_up NULL: a join drops its device's earlier fcnt_up from
    # the batch (Stage.join), so what is written here is always the current session's.
    update_rows(db, "devices", "dev_eui", ("fcnt_up",), list(b.fcnt_up.items()))
    if b.fcnt_resets:
        update_rows(db, "devices", "dev_eui", ("fcnt_resets",), list(b.fcnt_resets.items()))
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
