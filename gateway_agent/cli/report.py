"""`gateway-agent report KIND`: the evidence reports (docs/reports.md), from a running daemon
(control socket) or a stopped one (the database, read-only) — the same JSON either way."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from gateway_agent.cli.app import Ctx, config_error_text, emit, fail, hex_arg, pass_ctx
from gateway_agent.errors import AgentError, ConfigError, ControlError

KINDS = ("legionella", "co2", "bins", "gullies")
REPORT_TIMEOUT_S = 120.0


def last_month(today: dt.date) -> str:
    first = today.replace(day=1)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


def report_request(
    kind: str,
    month: str | None,
    date_from: str | None,
    date_to: str | None,
    devices: tuple[str, ...],
    tags: tuple[str, ...],
    today: dt.date,
) -> dict[str, Any]:
    """The arguments of one report, checked, as the control command `report` takes them."""
    if month and (date_from or date_to):
        raise click.UsageError("give --month, or --from/--to, not both")
    if date_to and not date_from:
        raise click.UsageError("--to needs --from")
    if not (month or date_from):
        month = last_month(today)
    if date_from and not date_to:
        date_to = today.isoformat()
    for label, v in (("--from", date_from), ("--to", date_to)):
        if v is not None:
            try:
                dt.date.fromisoformat(v)
            except ValueError:
                raise click.BadParameter(f"{v!r}: expected YYYY-MM-DD", param_hint=label) from None
    if month is not None:
        try:
            dt.datetime.strptime(month, "%Y-%m")
        except ValueError:
            raise click.BadParameter(f"{month!r}: expected YYYY-MM", param_hint="--month") from None
    euis = [hex_arg(d, "--device", 8).hex() for d in devices]
    return {"kind": kind, "month": month, "from": date_from, "to": date_to, "devices": euis,
            "tags": list(tags)}  # fmt: skip


def render(report: dict[str, Any], fmt: str, site: str) -> str:
    from gateway_agent.reports import render_csv, render_html, render_json

    if fmt == "csv":
        return render_csv(report)
    if fmt == "html":
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        return render_html(report, generated_at=stamp, site=site)
    return render_json(report)


@click.command("report")
@click.argument("kind", type=click.Choice(KINDS))
@click.option("--month", help="YYYY-MM (default: last month)")
@click.option("--from", "date_from", help="first day, YYYY-MM-DD")
@click.option("--to", "date_to", help="last day, YYYY-MM-DD (default: today)")
@click.option("--device", "devices", multiple=True, help="only this DevEUI (repeatable)")
@click.option("--tag", "tags", multiple=True, help="only devices with this tag (repeatable)")
@click.option(
    "--format", "fmt", type=click.Choice(["html", "csv", "json"]), default=None,
    help="output form (default: json on stdout, html into -o FILE)",
)  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="write here")
@click.option("--json", "as_json", is_flag=True, help="the report object as JSON")
@pass_ctx
def report(
    c: Ctx,
    kind: str,
    month: str | None,
    date_from: str | None,
    date_to: str | None,
    devices: tuple[str, ...],
    tags: tuple[str, ...],
    fmt: str | None,
    output: Path | None,
    as_json: bool,
) -> None:
    """Evidence report: the monthly legionella log, classroom air (CO2), bins or gullies."""
    req = report_request(kind, month, date_from, date_to, devices, tags, dt.date.today())
    if as_json:
        fmt = "json"
    fmt = fmt or ("html" if output and output.suffix.lower() in (".html", ".htm") else "json")
    try:
        if c.online:
            from gateway_agent.control import request

            # A month of 500 devices takes seconds: a longer wait than the 10 s default.
            rep = request(c.cfg.agent.control_path, "report", timeout_s=REPORT_TIMEOUT_S, **req)
        else:
            from gateway_agent.reports.request import run_request

            path = c.cfg.agent.db_path
            if not path.exists():
                fail(f"no database at {path} (has the agent ever run with this config?)")
            rep = run_request(path, req, c.cfg.reports)
    except ConfigError as e:
        fail(config_error_text(e))
    except (AgentError, ControlError) as e:
        fail(str(e))
    text = render(rep, fmt, c.cfg.agent.gateway_id)
    if output is None:
        if fmt == "json":
            emit(rep)
        else:
            click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"{output}: cannot write: {e.strerror or e}")
    n = len(rep.get("devices", []))
    click.echo(f"{kind} report {rep.get('from')} .. {rep.get('to')}: {n} devices -> {output}")
