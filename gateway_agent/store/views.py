"""Read models shared by the CLI (offline: reads the DB) and the control socket (daemon running).

Everything returned is JSON-able and free of key material (invariant 6).
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from gateway_agent.model import Device
from gateway_agent.store import Store


def device_view(dev: Device, st: dict[str, Any]) -> dict[str, Any]:
    lv = st.get("last_values") or {}
    return {
        "dev_eui": dev.dev_eui.hex(),
        "name": dev.name,
        "class": dev.device_class,
        "codec": dev.codec,
        "tags": list(dev.tags),
        "activation": dev.activation,
        "dev_addr": dev.dev_addr.hex() if dev.dev_addr else None,
        "join_eui": dev.join_eui.hex() if dev.join_eui else None,
        "joined": dev.activation == "abp" or dev.nwk_s_key is not None,
        "fcnt_up": st.get("fcnt_up"),
        "fcnt_down": st.get("fcnt_down"),
        "origin": st.get("origin"),
        "last_seen": st.get("last_seen"),
        "rssi": st.get("last_rssi"),
        "snr": st.get("last_snr"),
        "battery_v": lv.get("battery_v"),
        "battery_pct": lv.get("battery_pct"),
        "last_values": lv,
        "settings": dict(dev.settings),
    }


def devices_view(store: Store) -> list[dict[str, Any]]:
    sources = store.session_sources()
    rows = [device_view(d, st) for d, st in store.devices()]
    for r in rows:
        note = sources.get(r["dev_eui"])
        if note is not None:  # passive mode: "session from chirpstack (server, fetched at)"
            r["session"] = {k: note.get(k) for k in ("source", "server", "fetched")}
    return rows


def reading_view(row: dict[str, Any]) -> dict[str, Any]:
    """A stored reading as the CLI prints it (SQLite keeps booleans as 0/1)."""
    row["time_valid"] = bool(row.get("time_valid"))
    return row


def readings_view(
    store: Store,
    dev_eui: bytes | None = None,
    since: float | None = None,
    limit: int = 1000,
    after_seq: int | None = None,
) -> list[dict[str, Any]]:
    return [reading_view(r) for r in store.readings(dev_eui, since, limit, after_seq)]


def alerts_view(store: Store, limit: int = 100, only_open: bool = False) -> list[dict[str, Any]]:
    # Store.alerts filters open ones after its LIMIT: ask for enough rows that an older open
    # alert is not hidden behind newer cleared/acked ones.
    rows = store.alerts(max(limit, 100_000) if only_open else limit, only_open)[:limit]
    for a in rows:
        a["acked"] = bool(a["acked"])
    return rows


def outbox_view(store: Store) -> dict[str, Any]:
    """`[upstream]`'s outbox (depth, by_kind, oldest) and, under `outputs`, each output's own
    lane (the relay's included): depth, by_kind, oldest age, drops by kind."""
    st = store.outbox_stats()
    oldest = st["oldest"]
    now = time.time()
    lanes = {
        name: {
            "depth": q["depth"],
            "by_kind": q["by_kind"],
            "oldest_age_s": round(now - q["oldest"], 1) if q.get("oldest") else None,
            "dropped": q.get("dropped", {}),
        }
        for name, q in sorted(store.queue_stats().items())
    }
    return {
        "depth": st["depth"],
        "by_kind": st["by_kind"],
        "oldest": oldest,
        "oldest_age_s": round(now - oldest, 1) if oldest else None,
        "outputs": lanes,
    }


def db_view(store: Store, max_db_mb: float) -> dict[str, Any]:
    size = store.size_bytes()
    try:
        du = shutil.disk_usage(store.path.parent)
        free = du.free
    except OSError:
        free = None
    return {
        "path": str(store.path),
        "size_bytes": size,
        "cap_bytes": int(max_db_mb * 1024 * 1024),
        "used_pct_of_cap": round(100 * size / (max_db_mb * 1024 * 1024), 1),
        "disk_free_bytes": free,
    }


def clock_view() -> dict[str, Any]:
    """Clock sync state as systemd-timesyncd / chrony leave it (best effort, no subprocess)."""
    synced = None
    for p in ("/run/systemd/timesync/synchronized",):
        if os.path.exists(p):
            synced = True
    wall = time.time()
    return {"time": wall, "plausible": wall > 1_700_000_000, "synchronized": synced}


def status_view(
    store: Store, max_db_mb: float, live: dict[str, Any] | None = None
) -> dict[str, Any]:
    # Counted by SQLite: building 10,000 Devices (or reading every open alert) only to count
    # them cost most of the overview's time (issue #19).
    provisioned, heard = store.device_counts(time.time() - 3600)
    out: dict[str, Any] = {
        "daemon": live.get("daemon") if live else {"running": False},
        "devices": {"provisioned": provisioned, "heard_last_hour": heard},
        "outbox": outbox_view(store),
        "db": db_view(store, max_db_mb),
        # Live figures over the stored ones: a gateway not heard since a restart still shows,
        # with its last-seen time, instead of vanishing from `status`.
        "gateways": {**store.gateway_stats(), **((live or {}).get("gateways") or {})},
        "clock": clock_view(),
        "alerts_open": store.open_alert_count(100_000),
    }
    if live:
        out.update({k: v for k, v in live.items() if k not in ("daemon", "gateways")})
    return out
