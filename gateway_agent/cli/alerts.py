"""`alerts list` and `alerts ack`: the alerts raised by edge rules."""

from __future__ import annotations

import click
from rich.table import Column, Table

from gateway_agent.cli.app import Ctx, ask_or_read, console, emit, fail, pass_ctx
from gateway_agent.cli.tables import key_column, short_when
from gateway_agent.store import views


@click.group()
def alerts() -> None:
    """Alerts raised by edge rules."""


@alerts.command("list")
@click.option("--open", "only_open", is_flag=True, help="only raised, unacknowledged alerts")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def alerts_list(c: Ctx, only_open: bool, limit: int, as_json: bool) -> None:
    rows = ask_or_read(
        c, "alerts", lambda s: views.alerts_view(s, limit, only_open), limit=limit, open=only_open
    )
    if as_json:
        emit(rows)
        return
    # The id already names the rule, the device and raised/cleared: no columns repeat it, so
    # the whole id fits (it is what `alerts ack` takes).
    t = Table(
        Column("time", no_wrap=True),
        Column("severity", overflow="fold"),
        Column("value", overflow="fold"),
        key_column("id", [a["id"] for a in rows]),
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for a in rows:
        t.add_row(
            short_when(a["time"]),
            a["severity"] + (" (acked)" if a["acked"] else ""),
            f"{a['measurement']} {a['value']}",
            a["id"],
        )
    console.print(t)


@alerts.command("ack")
@click.argument("alert_id")
@pass_ctx
def alerts_ack(c: Ctx, alert_id: str) -> None:
    """Acknowledge one alert by its id or an unambiguous prefix of it."""
    # Resolved here because the store matches a prefix (SQL LIKE): a short or ambiguous id
    # would acknowledge every alert it happens to match.
    ids = [
        a["id"]
        for a in ask_or_read(
            c, "alerts", lambda s: views.alerts_view(s, 1_000_000), limit=1_000_000
        )
    ]
    match = [i for i in ids if i == alert_id] or [i for i in ids if i.startswith(alert_id)]
    if not match:
        fail(f"no alert {alert_id}")
    if len(match) > 1:
        fail(f"{alert_id!r} matches {len(match)} alerts; give more of the id (`alerts list`)")
    full = match[0]
    ok = ask_or_read(c, "alert_ack", lambda s: {"acked": s.ack_alert(full)}, id=full)["acked"]
    if not ok:
        fail(f"no alert {full}")
    click.echo(f"acknowledged {full}")
