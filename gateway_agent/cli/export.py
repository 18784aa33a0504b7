"""`export`: stored readings as CSV (one row per measurement), JSON or JSON lines."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys

import click

from gateway_agent.cli.app import Ctx, ask_or_read, hex_arg, parse_since, pass_ctx
from gateway_agent.store import views


@click.command("export")
@click.option("--since")
@click.option("--device", "dev_eui")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "jsonl"]),
    default="csv",
    show_default=True,
    help="csv: one row per measurement; json: one array; jsonl: one reading per line",
)
@click.option("--json", "as_json", is_flag=True, help="same as --format json")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="file (default: stdout)")
@pass_ctx
def export(
    c: Ctx, since: str | None, dev_eui: str | None, fmt: str, as_json: bool, output: str | None
) -> None:
    """Export stored readings as CSV (one row per measurement), JSON or JSON lines."""
    if as_json:
        fmt = "json"
    eui = hex_arg(dev_eui, "--device", 8) if dev_eui else None
    t0 = parse_since(since)
    rows = ask_or_read(
        c,
        "readings",
        lambda s: views.readings_view(s, eui, t0, 10_000_000),
        dev_eui=eui.hex() if eui else None,
        since=t0,
        limit=10_000_000,
        timeout_s=600,  # a year of readings is one long answer
    )
    if fmt == "json":
        text = json.dumps(rows, default=str, ensure_ascii=False) + "\n"
    elif fmt == "jsonl":
        text = "".join(json.dumps(r, default=str, ensure_ascii=False) + "\n" for r in rows)
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["time", "dev_eui", "fcnt", "f_port", "measurement", "value"])
        for r in rows:
            iso = dt.datetime.fromtimestamp(r["time"], dt.UTC).isoformat()
            for k, v in r["measurements"].items():
                w.writerow([iso, r["dev_eui"], r["fcnt"], r["f_port"], k, v])
        text = buf.getvalue()
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"exported {len(rows)} readings to {output}", err=True)
    else:
        sys.stdout.write(text)
