"""Rich rendering of `status`: one screen, red/amber/green."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

GREEN, AMBER, RED = "[green]●[/green]", "[yellow]●[/yellow]", "[red]●[/red]"


def _age(t: float | None) -> str:
    if not t:
        return "never"
    s = time.time() - t
    return (
        f"{s:.0f}s ago"
        if s < 120
        else (f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago")
    )


def render_status(console: Console, st: dict[str, Any]) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(width=2)
    t.add_column(style="bold")
    t.add_column()
    d = st["daemon"]
    if d.get("running"):
        t.add_row(
            GREEN if d.get("healthy", True) else AMBER,
            "daemon",
            f"running pid {d.get('pid')} v{d.get('version')}, up {d.get('uptime_s', 0):.0f}s",
        )
    else:
        t.add_row(RED, "daemon", "not running (figures from the database)")
    for gid, g in (st.get("gateways") or {}).items():
        last = g.get("last_seen")
        light = (
            GREEN
            if last and time.time() - last < 60
            else (AMBER if last and time.time() - last < 600 else RED)
        )
        t.add_row(
            light,
            f"gateway {gid}",
            f"last packet {_age(last)}, rx ok {g.get('rx_ok', 0)} / bad "
            f"{g.get('rx_bad', 0)}, tx ok {g.get('tx_ok', 0)} / failed {g.get('tx_failed', 0)}",
        )
    dv = st["devices"]
    light = (
        GREEN
        if dv["provisioned"] and dv["heard_last_hour"] >= dv["provisioned"] * 0.9
        else (AMBER if dv["heard_last_hour"] else RED)
    )
    t.add_row(
        light, "devices", f"{dv['heard_last_hour']} of {dv['provisioned']} heard in the last hour"
    )
    ob = st["outbox"]
    age = ob.get("oldest_age_s")
    light = GREEN if not ob["depth"] or (age or 0) < 300 else (AMBER if (age or 0) < 3600 else RED)
    t.add_row(light, "outbox", f"{ob['depth']} waiting" + (f", oldest {age:.0f}s" if age else ""))
    up = st.get("upstream")
    if up:
        light = GREEN if up.get("connected") else RED
        t.add_row(
            light,
            "upstream",
            f"{up['host']}:{up['port']} {'connected' if up.get('connected') else 'DOWN'}"
            + (f", last error: {up['last_error']}" if up.get("last_error") else "")
            + f", published {up.get('published', 0)}",
        )
    db = st["db"]
    pct = db["used_pct_of_cap"]
    light = GREEN if pct < 70 else (AMBER if pct < 90 else RED)
    free = db.get("disk_free_bytes")
    t.add_row(
        light,
        "database",
        f"{db['size_bytes'] / 1e6:.1f} MB of {db['cap_bytes'] / 1e6:.0f} MB cap ({pct}%)"
        + (f", disk free {free / 1e9:.1f} GB" if free is not None else ""),
    )
    ck = st["clock"]
    t.add_row(
        GREEN if ck.get("plausible") and ck.get("synchronized") else AMBER,
        "clock",
        ("synchronised" if ck.get("synchronized") else "sync unknown")
        + ("" if ck.get("plausible") else ", IMPLAUSIBLE (1970?)"),
    )
    if st.get("alerts_open"):
        t.add_row(AMBER, "alerts", f"{st['alerts_open']} open")
    console.print(t)
