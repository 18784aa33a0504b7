"""The `fleet` scenario's verdicts (pure, over the JSON report) and its verdict table (rich)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hil.fleetrun import FleetSpec

RELAY_CHECKS = (
    "per gateway: every frame heard reached the central (heard == relayed)",
    "the cut agent's frames arrived in the order heard",
    "no frame relayed twice beyond at-least-once redelivery",
    "the central decodes every event/up and sees each uplink once",
    "the central saw the cut gateway go OFFLINE (last will) and come back ONLINE",
)


def verdicts(r: Mapping[str, Any], spec: FleetSpec) -> dict[str, bool]:
    m, gws, central = r["merge"], r["gateways"], r["central"]
    cut = gws[spec.cut_gateway]
    checks = {
        "every uplink once in the merge by id (none missing, none unknown)": (
            r["reached_an_agent"] > 0 and m["missing"] == 0 and m["unknown"] == 0
        ),
        "each agent published a reading for every frame its gateway heard": all(
            g["readings_missing"] == 0 and g["readings_unexpected"] == 0 for g in gws
        ),
        "decoded values match the models": m["measurement_mismatches"] == 0
        and m["bad_messages"] == 0,
        "the backhaul was really cut (link dropped, frames heard meanwhile)": (
            cut["proxy"]["aborted"] >= 1 and cut["heard_during_cut"] > 0
        ),
    }
    if r.get("passive"):
        checks["passive: no agent sent a downlink of its own (the central owns them)"] = all(
            g["downlinks"] == 0 for g in gws
        )
    if not central["consumed"]:
        for k in RELAY_CHECKS:
            checks[f"{k} [relay not built in this tree]"] = False
        return checks
    cuts = max(1, cut["proxy"]["cuts"])
    checks[RELAY_CHECKS[0]] = all(g["relay_missing"] == 0 and g["relay_foreign"] == 0 for g in gws)
    checks[RELAY_CHECKS[1]] = cut["out_of_order"] == 0 and cut["drain_s"] is not None
    checks[RELAY_CHECKS[2]] = (
        all(g["redelivered"] == 0 for i, g in enumerate(gws) if i != spec.cut_gateway)
        and cut["redelivered"] <= spec.redelivery_max * cuts
    )
    checks[RELAY_CHECKS[3]] = (
        central["missing"] == 0
        and central["decode_errors"] == 0
        and central["gateway_id_mismatch"] == 0
        and central["no_rx_info"] == 0
    )
    checks[RELAY_CHECKS[4]] = central["cut_gateway_offline_online"]
    return checks


def _s(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def render_fleet(r: Mapping[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=None if sys.stdout.isatty() else 132)
    cut, m, c = r["cut"], r["merge"], r["central"]
    scale = (
        f"1 h outage = {cut['simulated_s']:.0f} s simulated at x{r['accel']:g}"
        f" = {_s(cut['wall_s'])} s wall; devices send every"
        f" {'/'.join(str(i) for i in r['interval_s'])} s simulated"
    )
    gt = Table(title=f"hil scenario {r['scenario']}: per gateway (agent)", caption=scale)
    for col in (
        "gateway (agent)",
        "heard",
        "heard in the cut",
        "relayed",
        "missing",
        "redelivered",
        "out of order",
        "readings",
        "drain s",
    ):
        gt.add_column(col, justify="left" if col.startswith("gateway") else "right")
    for g in r["gateways"]:
        is_cut = g["agent"] == cut["agent"]
        mark = " CUT" if is_cut else ""
        gt.add_row(
            f"{g['gateway']} ({g['agent']}){mark}",
            str(g["heard"]),
            str(g["heard_during_cut"]),
            _s(g.get("relayed")),
            _s(g.get("relay_missing")),
            _s(g.get("redelivered")),
            _s(g.get("out_of_order")),
            str(g["readings"]),
            _s(g.get("drain_s")) if is_cut else "",
        )
    con.print(gt)
    t = Table(title=f"hil scenario {r['scenario']}: {r['verdict'].upper()}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    cov = r["devices_heard_by_gateways"]
    rows = [
        ("devices / agents", f"{r['devices']} / {r['agents']}"),
        (
            "devices heard by 0/1/2/3 gateways",
            "/".join(cov[k] and str(cov[k]) or "0" for k in "0123"),
        ),
        ("uplinks (transmissions)", f"{r['uplinks']} ({r['sent']})"),
        ("heard on air / reached an agent", f"{r['heard_on_air']} / {r['reached_an_agent']}"),
        ("merge: reading messages -> unique ids", f"{m['messages']} -> {m['unique_ids']}"),
        ("merge: ids from 1/2/3 agents", "/".join(str(m["by_agents"].get(k, 0)) for k in "123")),
        ("merge: missing / unknown ids", f"{m['missing']} / {m['unknown']}"),
        ("merge: redelivered by one agent", m["redelivered_by_one_agent"]),
        ("downlinks the agents sent (PULL_RESP)", sum(g["downlinks"] for g in r["gateways"])),
    ]
    if c["consumed"]:
        rows += [
            ("central: event/up messages -> uplinks", f"{c['messages']} -> {c['uplinks']}"),
            ("central: gateway copies deduplicated", c["gateway_copies_deduplicated"]),
            (
                "central: decode errors / id mismatches",
                f"{c['decode_errors']} / {c['gateway_id_mismatch']}",
            ),
            ("central: state/conn of the cut gateway", " -> ".join(c["cut_gateway_states"])),
        ]
    else:
        rows.append(("central", "no relay in this tree: nothing consumed"))
    rows += [
        (
            "cut: agent, mode, simulated s from t",
            f"{cut['agent']}, {cut['mode']}, {cut['simulated_s']:.0f} from {cut['at_s']:.0f}",
        ),
        (
            "cut: relay / readings drain s after restore",
            f"{_s(cut['relay_drain_s'])} / {_s(cut['readings_drain_s'])}",
        ),
        (
            "wall s (setup / simulate / drain)",
            f"{r['wall_s']:.1f} ({'/'.join(_s(r['phases_s'].get(k)) for k in ('setup_s', 'simulate_s', 'drain_s'))})",
        ),
        ("agents CPU s", " / ".join(f"{g['daemon_cpu_s']:.1f}" for g in r["gateways"])),
    ]
    for k, v in rows:
        t.add_row(k, str(v))
    for name, ok in r["checks"].items():
        t.add_row(name, "[green]ok[/green]" if ok else "[red]FAIL[/red]")
    con.print(t)
