"""The red/amber/green lines of `gateway-agent status`, as data: the CLI renders them with rich,
the web console as its overview. Pure: the `status` JSON and the time in, lines out."""

from __future__ import annotations

from typing import Any

GREEN, AMBER, RED = "ok", "warn", "fail"


def _age(t: float | None, now: float) -> str:
    if not t:
        return "never"
    s = now - t
    return (
        f"{s:.0f}s ago"
        if s < 120
        else (f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago")
    )


def status_checks(st: dict[str, Any], now: float) -> list[tuple[str, str, str]]:
    """(light, what, detail) per line, from the `status` JSON."""
    out: list[tuple[str, str, str]] = []
    d = st.get("daemon") or {}
    if d.get("running"):
        out.append(
            (
                GREEN if d.get("healthy", True) else AMBER,
                "daemon",
                f"running pid {d.get('pid')} v{d.get('version')}, up {d.get('uptime_s', 0):.0f}s",
            )
        )
    else:
        out.append((RED, "daemon", "not running (figures from the database)"))
    for gid, g in (st.get("gateways") or {}).items():
        last = g.get("last_seen")
        light = GREEN if last and now - last < 60 else (AMBER if last and now - last < 600 else RED)
        out.append(
            (
                light,
                f"gateway {gid}",
                f"last packet {_age(last, now)}, rx ok {g.get('rx_ok', 0)} / bad "
                f"{g.get('rx_bad', 0)}, tx ok {g.get('tx_ok', 0)} / failed {g.get('tx_failed', 0)}",
            )
        )
    dv = st["devices"]
    light = (
        GREEN
        if dv["provisioned"] and dv["heard_last_hour"] >= dv["provisioned"] * 0.9
        else (AMBER if dv["heard_last_hour"] else RED)
    )
    out.append(
        (light, "devices", f"{dv['heard_last_hour']} of {dv['provisioned']} heard in the last hour")
    )
    ob = st["outbox"]
    age = ob.get("oldest_age_s")
    light = GREEN if not ob["depth"] or (age or 0) < 300 else (AMBER if (age or 0) < 3600 else RED)
    out.append(
        (light, "outbox", f"{ob['depth']} waiting" + (f", oldest {age:.0f}s" if age else ""))
    )
    up = st.get("upstream")
    if up:
        out.append(
            (
                GREEN if up.get("connected") else RED,
                "upstream",
                f"{up['host']}:{up['port']} {'connected' if up.get('connected') else 'DOWN'}"
                + (f", last error: {up['last_error']}" if up.get("last_error") else "")
                + f", published {up.get('published', 0)}",
            )
        )
    db = st["db"]
    pct = db["used_pct_of_cap"]
    free = db.get("disk_free_bytes")
    out.append(
        (
            GREEN if pct < 70 else (AMBER if pct < 90 else RED),
            "database",
            f"{db['size_bytes'] / 1e6:.1f} MB of {db['cap_bytes'] / 1e6:.0f} MB cap ({pct}%)"
            + (f", disk free {free / 1e9:.1f} GB" if free is not None else ""),
        )
    )
    ck = st["clock"]
    out.append(
        (
            GREEN if ck.get("plausible") and ck.get("synchronized") else AMBER,
            "clock",
            ("synchronised" if ck.get("synchronized") else "sync unknown")
            + ("" if ck.get("plausible") else ", IMPLAUSIBLE (1970?)"),
        )
    )
    if st.get("alerts_open"):
        out.append((AMBER, "alerts", f"{st['alerts_open']} open"))
    return out
