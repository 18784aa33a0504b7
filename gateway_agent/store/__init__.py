"""SQLite store: devices, sessions, readings, outbox, alerts, rule state. WAL, group commit, cap.

Storage by table (as ChirpStack's `storage/`): each table's SQL lives in its own module as plain
functions taking the connection (devices, outbox, history, gateways, downlink_queue; migrations,
the group commit in batch, the cap in capacity, drop counts in drops). They open no transaction
and take no lock: `Store` (store.py), the facade everyone imports, does both (db.SqliteFile) and
keeps the process state (outbox seq floor, deferred acks), so the per-table modules stay
stateless and a hot path costs one extra call per batch, nothing per row.
"""

from gateway_agent.store.batch import Batch
from gateway_agent.store.capacity import CAP_HIGH, CAP_LOW
from gateway_agent.store.db import PAGE_SIZE
from gateway_agent.store.drops import DROP_KINDS
from gateway_agent.store.migrations import MIGRATIONS, SCHEMA_VERSION, migrate, migration
from gateway_agent.store.outbox import (
    OUTBOX_COLS,
    PRIO_ALERT,
    PRIO_EVENT,
    PRIO_READING,
    OutboxRow,
    OutboxTuple,
)
from gateway_agent.store.store import Store, log_store_event

__all__ = [
    "CAP_HIGH",
    "CAP_LOW",
    "DROP_KINDS",
    "MIGRATIONS",
    "OUTBOX_COLS",
    "PAGE_SIZE",
    "PRIO_ALERT",
    "PRIO_EVENT",
    "PRIO_READING",
    "SCHEMA_VERSION",
    "Batch",
    "OutboxRow",
    "OutboxTuple",
    "Store",
    "log_store_event",
    "migrate",
    "migration",
]
