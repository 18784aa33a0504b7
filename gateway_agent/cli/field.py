"""Field commands: `plot` (a chart in the terminal), `doctor` (checks with fixes), `service install`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from gateway_agent.cli import Ctx, chart, console, emit, fail, hex_arg, main, pass_ctx
from gateway_agent.cli.data import _get, parse_since
from gateway_agent.errors import AgentError

# --------------------------------------------------------------------------- plot


def series(rows: list[dict[str, Any]], measurement: str) -> list[tuple[float, float]]:
    out = []
    for r in rows:
        v = r["measurements"].get(measurement)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append((float(r["time"]), float(v)))
    out.sort()
    return out


def _spinner() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
        disable=not sys.stderr.isatty(),
    )


@main.command()
@click.option("--device", "dev_eui", required=True, help="DevEUI (hex)")
@click.option("--measurement", "-m", help="normalized name, e.g. co2_ppm (default: the only one)")
@click.option("--since", default="24h", show_default=True, help="30m, 2h, 7d or an ISO date")
@click.option("--spark", is_flag=True, help="one-line sparkline instead of the full chart")
@click.option("--width", type=click.IntRange(20, 1000), help="default: the terminal width")
@click.option("--height", type=click.IntRange(2, 100), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the series instead")
@pass_ctx
def plot(
    c: Ctx,
    dev_eui: str,
    measurement: str | None,
    since: str,
    spark: bool,
    width: int | None,
    height: int,
    as_json: bool,
) -> None:
    """Chart one measurement of one device in the terminal."""
    eui = hex_arg(dev_eui, "--device", 8)
    t0 = parse_since(since)
    with _spinner() as prog:
        prog.add_task("reading the database", total=None)
        rows = _get(
            c,
            "readings",
            lambda s: s.readings(eui, t0, 1_000_000),
            dev_eui=eui.hex(),
            since=t0,
            limit=1_000_000,
        )
    names = sorted({k for r in rows for k in r["measurements"]})
    if measurement is None:
        if len(names) != 1:
            fail(
                f"choose --measurement among: {', '.join(names)}"
                if names
                else f"no readings with measurements for {eui.hex()} since {since}",
                2 if names else 1,
            )
        measurement = names[0]
    pts = series(rows, measurement)
    if as_json:
        vals = [v for _, v in pts]
        emit(
            {
                "dev_eui": eui.hex(),
                "measurement": measurement,
                "since": t0,
                "count": len(pts),
                "min": min(vals) if vals else None,
                "max": max(vals) if vals else None,
                "last": vals[-1] if vals else None,
                "series": [{"time": t, "value": v} for t, v in pts],
            }
        )
        return
    if not pts:
        fail(
            f"no {measurement} readings for {eui.hex()} since {since}"
            + (f" (it has: {', '.join(names)})" if names else "")
        )
    w = width or console.width
    out = console if width is None else Console(width=width, file=console.file)
    now = time.time()
    vals = [v for _, v in pts]
    caption = (
        f"{len(pts)} points, min {chart._num(min(vals))}, max {chart._num(max(vals))}, "
        f"last {chart._num(vals[-1])}"
    )
    title = f"{eui.hex()} {measurement}"
    if spark:
        head = f"{measurement} "
        cols = max(8, w - len(head) - len(caption) - 2)
        line = chart.sparkline(chart.fill_gaps(chart.bucket(pts, t0 or pts[0][0], now, cols)))
        text = Text(head, style="bold") + Text(line, style="cyan") + Text(f"  {caption}")
        out.print(text, no_wrap=True)
        return
    lines = chart.plot(pts, w - 4, height, t0, now)
    body = Text("\n".join(lines), style="cyan", no_wrap=True)
    out.print(Panel(body, title=title, subtitle=caption, expand=False))


# --------------------------------------------------------------------------- doctor

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}
LABEL = {"ok": "ok", "warn": "warn", "fail": "FAIL"}


@main.command()
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


# --------------------------------------------------------------------------- service


@main.group()
def service() -> None:
    """systemd service management."""


@service.command("install")
@click.option(
    "--prefix",
    default="/opt/gateway-agent",
    show_default=True,
    help="install prefix: the venv is PREFIX/.venv (ExecStart=PREFIX/.venv/bin/gateway-agent)",
)
@click.option(
    "--root",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False),
    help="alternative root directory (image builds, tests): no systemctl call",
)
@click.option("--dry-run", is_flag=True, help="print what would be done, change nothing")
def service_install(prefix: str, root: str, dry_run: bool) -> None:
    """Install the unit, sysusers.d and tmpfiles.d files; create the user; reload systemd."""
    from gateway_agent.cli import systemd as svc

    if not prefix.startswith("/"):
        raise click.BadParameter("must be an absolute path", param_hint="--prefix")
    steps = svc.plan_install(prefix, str(Path(root).resolve()))
    exe = Path(root) / prefix.lstrip("/") / ".venv/bin/gateway-agent"
    if dry_run:
        for s in steps:
            click.echo(svc.describe(s))
    else:
        try:
            svc.apply(steps, click.echo)
        except (OSError, subprocess.CalledProcessError) as e:
            fail(f"service install: {e}")
    if not exe.exists():
        click.echo(f"note: {exe} does not exist yet (create the venv there, see docs/service.md)")
    click.echo(
        "next: put agent.toml (0640 root:gateway-agent) and devices.toml (0600 gateway-agent) in "
        "/etc/gateway-agent/, then: sudo systemctl enable --now gateway-agent"
    )
