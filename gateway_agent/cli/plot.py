"""`plot`: one measurement of one device as a chart (or a sparkline) in the terminal."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.text import Text

import gateway_agent.cli.chart as chart
from gateway_agent.cli.app import (
    Ctx,
    ask_or_read,
    console,
    emit,
    fail,
    hex_arg,
    parse_since,
    pass_ctx,
)


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


@click.command()
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
        rows = ask_or_read(
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
