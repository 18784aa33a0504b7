"""Hand-built months for the report tests: a real SQLite file made by the real Store."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway_agent.model import Device
from gateway_agent.store import Batch, Store

UTC = dt.UTC


def ts(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    """January has no clock change: UTC is London time."""
    return dt.datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()


def eui(n: int) -> bytes:
    return bytes.fromhex(f"70b3d57ed000{n:04x}")


def device(n: int, cls: str, name: str = "", tags: tuple[str, ...] = (), **settings: Any) -> Device:
    return Device(
        dev_eui=eui(n), name=name or f"dev{n}", device_class=cls, tags=tags, settings=settings
    )


def make_db(
    path: Path, devices: list[Device], rows: Iterable[tuple[bytes, float, dict[str, Any]]]
) -> Path:
    """Devices and readings through the Store's public API (the real schema and migrations)."""
    store = Store(path, synchronous="NORMAL")
    try:
        store.upsert_devices(devices)
        batch = Batch()
        fcnt: dict[bytes, int] = {}
        for dev_eui, t, m in rows:
            n = fcnt[dev_eui] = fcnt.get(dev_eui, 0) + 1
            batch.readings.append(
                (
                    f"gw:{dev_eui.hex()}:{n}",
                    dev_eui.hex(),
                    n,
                    85,
                    t,
                    1,
                    b"",
                    json.dumps(m),
                    "{}",
                    None,
                    -80.0,
                    7.5,
                    1,
                )
            )
            if len(batch.readings) >= 5000:
                store.commit_batch(batch)
                batch = Batch()
        if batch.readings:
            store.commit_batch(batch)
    finally:
        store.close()
    return path


def every(start: float, end: float, step_s: float) -> Iterable[float]:
    t = start
    while t < end:
        yield t
        t += step_s
