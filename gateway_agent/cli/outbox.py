"""`outbox status`, `watch` and `retry`: the upstream queue."""

from __future__ import annotations

import time
from typing import Any

import click

from gateway_agent.cli.app import Ctx, ask_or_read, console, emit, fail, pass_ctx
from gateway_agent.cli.tables import ago
from gateway_agent.store import views


@click.group()
def outbox() -> None:
    """The upstream queue."""


@outbox.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def outbox_status(c: Ctx, as_json: bool) -> None:
    st = ask_or_read(c, "outbox", views.outbox_view)
    if as_json:
        emit(st)
        return
    if not st["depth"]:
        click.echo("0 messages waiting: everything has reached the broker")
    else:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(st["by_kind"].items()))
        age = st["oldest_age_s"]
        click.echo(
            f"{st['depth']} messages waiting ({kinds})"
            + (f", oldest {ago(time.time() - age)}" if age is not None else "")
        )
    for name, lane in sorted(st.get("outputs", {}).items()):
        click.echo(_lane_line(name, lane))


def _waiting(st: dict[str, Any]) -> int:
    """Everything still to go: the outbox and every output's lane (the relay's included)."""
    return int(st["depth"]) + sum(int(x.get("depth", 0)) for x in st.get("outputs", {}).values())


def _lane_line(name: str, lane: dict[str, Any]) -> str:
    """One output's lane: `influx: 120 waiting (up 118, alert 2), oldest 3 min ago, down
    (connection refused), 4 dropped`."""
    depth = lane.get("depth", 0)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(lane.get("by_kind", {}).items()))
    text = f"{name}: {depth} waiting" + (f" ({kinds})" if kinds else "")
    age = lane.get("oldest_age_s")
    if age is not None:
        text += f", oldest {ago(time.time() - age)}"
    state = lane.get("state")
    if state:
        text += f", {state}" + (f" ({lane['last_error']})" if lane.get("last_error") else "")
    dropped = sum(int(n) for n in (lane.get("dropped") or {}).values())
    if dropped:
        text += f", {dropped} dropped"
    return text


@outbox.command("watch")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=1),
    default=3600.0,
    show_default=True,
    help="give up after this many seconds",
)
@click.option(
    "--interval", "interval_s", type=click.FloatRange(min=0.1), default=1.0, show_default=True
)
@pass_ctx
def outbox_watch(c: Ctx, timeout_s: float, interval_s: float) -> None:
    """Watch a backlog drain upstream, with a progress bar (needs the daemon running).
    Exit 0 once the outbox and every output's lane are empty, 1 on timeout."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    if not c.online:
        fail("the daemon is not running (nothing drains the outbox)")
    start = _waiting(c.act("outbox"))
    deadline = time.monotonic() + timeout_s
    with Progress(
        TextColumn("draining"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("outbox", total=max(start, 1), rate="")
        last_depth, last_t = start, time.monotonic()
        while True:
            depth = _waiting(c.act("outbox"))
            now = time.monotonic()
            if depth > start:  # new readings arrived faster than the drain: grow the bar
                start = depth
                bar.update(task, total=start)
            rate = (last_depth - depth) / max(now - last_t, 1e-6)
            last_depth, last_t = depth, now
            bar.update(task, completed=start - depth, rate=f"{max(rate, 0):.0f} msg/s")
            if depth == 0:
                bar.update(task, completed=start or 1)
                break
            if now >= deadline:
                fail(f"outbox still holds {depth} messages after {timeout_s:.0f} s")
            time.sleep(interval_s)
    click.echo("outbox empty: everything has reached the broker")


@outbox.command("retry")
@pass_ctx
def outbox_retry(c: Ctx) -> None:
    """Reconnect upstream now instead of waiting for the backoff."""
    if not c.online:
        fail("the daemon is not running")
    c.act("outbox_retry")
    click.echo("upstream retry requested")
