"""`status`: one screen on the daemon, gateways, devices, outbox, upstream, DB and clock."""

from __future__ import annotations

import click

from gateway_agent.cli.app import Ctx, ask_or_read, console, emit, pass_ctx
from gateway_agent.store import views


@click.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """One screen: daemon, gateways, devices, outbox, upstream, DB, clock."""
    st = ask_or_read(c, "status", lambda s: views.status_view(s, c.cfg.store.max_db_mb))
    if as_json:
        emit(st)
        return
    from gateway_agent.cli.render import render_status

    render_status(console, st)
