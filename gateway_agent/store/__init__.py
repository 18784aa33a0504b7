"""SQLite store (WAL, group commit, disk cap), one module per table as ChirpStack's `storage/`.

Table modules are plain functions over the connection with no lock or transaction of their own;
`Store` (store.py), the facade everyone imports, adds both (db.SqliteFile) and keeps the process
state, so a hot path costs one extra call per batch and nothing per row.
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
from gateway_agent.store.queue import QueueRow, QueueTuple
from gateway_agent.store.store import Store

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
    "QueueRow",
    "QueueTuple",
    "Store",
    "migrate",
    "migration",
]
