"""`doctor`: run the checks of gateway_agent.doctor and print each failure with its fix."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from gateway_agent.cli.app import Ctx, console, emit, pass_ctx
from gateway_agent.errors import AgentError

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}
LABEL = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.option("--timeout", "timeout_s", default=5.0, show_default=True, help="broker probe (s)")
@pass_ctx
def doctor(c: Ctx, as_json: bool, timeout_s: float) -> None:
    """Check radio, broker, database, disk, clock and permissions; print the fix for each
    failure. Exit 1 when any check fails."""
    from gateway_agent import doctor as dr

    cfg = c.cfg
    live: dict[str, Any] | None = None
    quick_check: Any = None
    if c.online:
        try:
            live = c.ask("status")
            quick_check = lambda: c.ask("db_check", timeout_s=120)["quick_check"]  # noqa: E731
        except AgentError:
            live = None
    if quick_check is None and cfg.agent.db_path.exists():
        quick_check = lambda: _offline_quick_check(cfg.agent.db_path)  # noqa: E731
    plan = dr.plan_checks(cfg, live, quick_check, broker_timeout_s=timeout_s)
    results = []
    with Progress(
        SpinnerColumn(),
        TextColumn("checking {task.description}"),
        BarColumn(),
        console=console,
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as prog:
        task = prog.add_task("", total=len(plan))
        for label, fn in plan:
            prog.update(task, description=label)
            results.extend(fn())
            prog.advance(task)
    failed = any(r.status == "fail" for r in results)
    if as_json:
        emit({"ok": not failed, "checks": [r.as_dict() for r in results]})
    elif console.is_terminal:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for r in results:
            text = Text(r.detail)
            if r.fix:
                text.append(f"\nfix: {r.fix}", style="dim" if r.status == "warn" else "")
            grid.add_row(Text(LABEL[r.status], style=STYLE[r.status]), r.name, text)
        console.print(grid, highlight=False)
    else:  # piped: one unwrapped line per check (and per fix), for grep
        nw = max(len(r.name) for r in results)
        for r in results:
            click.echo(f"{LABEL[r.status]:>4} {r.name:<{nw}}  {r.detail}")
            if r.fix:
                click.echo(f"     {'':<{nw}}  fix: {r.fix}")
    sys.exit(1 if failed else 0)


def _offline_quick_check(path: Path) -> str:
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return str(db.execute("PRAGMA quick_check").fetchone()[0])
    finally:
        db.close()
