"""Scenario report: what was sent, heard, accepted and lost, alerts, latency, daemon cost.
`build_report` is pure (the runner passes in its records); `render` prints the verdict table."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class UplinkRecord:
    """One LoRaWAN uplink (a device FCnt), however many times it went on air."""

    id: str
    dev_eui: str
    device_class: str
    fcnt: int
    truth: Mapping[str, float]
    sent: int = 0  # transmissions (retries included)
    heard: bool = False  # at least one gateway/modem received it
    forwarded_mono: float | None = None  # first datagram/line handed to the agent
    forwarded_while_down: bool = False  # only ever forwarded while the agent was dead
    at_risk: bool = False  # forwarded within the kill window (not yet committed is legal)
    pushes: list[tuple[int, int]] = field(default_factory=list)  # (gateway, push seq) carrying it
    reached_agent: bool = True  # False: no PUSH_ACK for any datagram carrying it, no modem line


@dataclass(slots=True)
class Upstream:
    """What the subscriber saw: first arrival time per id, all ids seen, alerts."""

    first_seen: dict[str, float] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    measurements: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    alerts: list[Mapping[str, Any]] = field(default_factory=list)
    events: list[Mapping[str, Any]] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, math.ceil(q / 100.0 * len(s)) - 1)
    return s[k]


def measurement_mismatches(
    records: Iterable[UplinkRecord], up: Upstream, tolerance: float = 1e-6
) -> list[str]:
    """Ids whose decoded measurements differ from the model's truth (a decoder or crypto bug)."""
    bad = []
    for r in records:
        got = up.measurements.get(r.id)
        if got is None:
            continue
        for k, want in r.truth.items():
            v = got.get(k)
            if not isinstance(v, (int, float)) or abs(float(v) - want) > tolerance * max(
                1.0, abs(want)
            ):
                bad.append(f"{r.id}:{k}")
                break
    return bad


def build_report(
    scenario: str,
    records: Mapping[str, UplinkRecord],
    up: Upstream,
    accepted_db: set[str] | None,
    expected_alerts: set[tuple[str, str]],
    genuine_extra: set[str] = frozenset(),  # type: ignore[assignment]
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON report. `lost` counts uplinks the agent received while running (outside a kill
    window) that never came out upstream; `lost_accepted` counts rows the agent committed
    (DESIGN.md invariant 1) that never came out: both must be zero. An uplink none of whose
    datagrams got a PUSH_ACK never reached the agent's socket (`never_acked`: UDP drops on an
    overloaded host); it is reported, not counted as lost."""
    recs = list(records.values())
    forwarded = [r for r in recs if r.forwarded_mono is not None]
    expected = [
        r for r in forwarded if not r.forwarded_while_down and not r.at_risk and r.reached_agent
    ]
    upstream_ids = set(up.first_seen)
    lost = sorted(r.id for r in expected if r.id not in upstream_ids)
    lost_accepted = sorted((accepted_db or set()) - upstream_ids)
    genuine = set(records) | set(genuine_extra)
    forged = sorted(upstream_ids - genuine)
    latencies = [
        (up.first_seen[r.id] - r.forwarded_mono) * 1000.0
        for r in forwarded
        if r.id in up.first_seen and r.forwarded_mono is not None
    ]
    raised = {
        (str(a.get("devEui")), str(a.get("rule"))) for a in up.alerts if a.get("state") == "raised"
    }
    missing_alerts = sorted(f"{d}:{r}" for d, r in expected_alerts - raised)
    dup = sum(n - 1 for n in up.count.values() if n > 1)
    mismatches = measurement_mismatches(recs, up)
    report: dict[str, Any] = {
        "scenario": scenario,
        "sent": sum(r.sent for r in recs),
        "uplinks": len(recs),
        "heard": sum(1 for r in recs if r.heard),
        "forwarded": len(forwarded),
        "forwarded_while_agent_down": sum(1 for r in forwarded if r.forwarded_while_down),
        "at_risk_at_kill": sum(1 for r in forwarded if r.at_risk),
        "never_acked": sum(1 for r in forwarded if not r.reached_agent),
        "expected": len(expected),
        "accepted": len(upstream_ids & genuine),
        "accepted_in_db": None if accepted_db is None else len(accepted_db),
        "lost": len(lost),
        "lost_ids": lost[:50],
        "lost_accepted": len(lost_accepted),
        "lost_accepted_ids": lost_accepted[:50],
        "duplicated": dup,
        "forged_accepted": len(forged),
        "forged_ids": forged[:50],
        "measurement_mismatches": len(mismatches),
        "mismatch_ids": mismatches[:50],
        "alerts_expected": len(expected_alerts),
        "alerts_raised": len(raised),
        "alerts_missing": missing_alerts[:50],
        "events": [e.get("event", e.get("type", "?")) for e in up.events],
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        },
    }
    report.update(extra or {})
    checks = {
        "zero loss of accepted readings": report["lost"] == 0 and report["lost_accepted"] == 0,
        "nothing forged accepted": report["forged_accepted"] == 0,
        "decoded values match the models": report["measurement_mismatches"] == 0,
        "expected alerts raised": not missing_alerts,
        "something was delivered": report["accepted"] > 0,
    }
    report["checks"] = checks
    report["verdict"] = "pass" if all(checks.values()) else "fail"
    return report


def render(report: Mapping[str, Any]) -> None:
    """The verdict table, on the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"hil scenario {report['scenario']}: {report['verdict'].upper()}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    lat = report["latency_ms"]
    rows = [
        ("uplinks (transmissions)", f"{report['uplinks']} ({report['sent']})"),
        ("heard by a gateway", report["heard"]),
        ("forwarded to the agent", report["forwarded"]),
        ("accepted upstream (unique ids)", report["accepted"]),
        ("lost / lost after commit", f"{report['lost']} / {report['lost_accepted']}"),
        ("duplicates upstream", report["duplicated"]),
        ("forged accepted", report["forged_accepted"]),
        ("alerts expected / raised", f"{report['alerts_expected']} / {report['alerts_raised']}"),
        (
            "latency p50/p95/p99 ms",
            "/".join("-" if lat[k] is None else f"{lat[k]:.0f}" for k in ("p50", "p95", "p99")),
        ),
        (
            "daemon CPU s / peak RSS MiB",
            f"{report.get('daemon_cpu_s', 0):.1f} / {report.get('daemon_peak_rss_mib', 0):.1f}",
        ),
        ("wall time s", f"{report.get('wall_s', 0):.1f}"),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    for name, ok in report["checks"].items():
        t.add_row(name, "[green]ok[/green]" if ok else "[red]FAIL[/red]")
    Console().print(t)
