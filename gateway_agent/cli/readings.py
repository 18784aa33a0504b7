"""`readings show` (stored readings) and `readings tail` (follow the daemon live)."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

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
from gateway_agent.cli.tables import key_column, when
from gateway_agent.store import views


@click.group()
def readings() -> None:
    """Stored readings."""


@readings.command("show")
@click.option("--device", "dev_eui")
@click.option("--since")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def readings_show(
    c: Ctx, dev_eui: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    eui = hex_arg(dev_eui, "--device", 8) if dev_eui else None
    t0 = parse_since(since)
    rows = ask_or_read(
        c,
        "readings",
        lambda s: views.readings_view(s, eui, t0, limit),
        dev_eui=eui.hex() if eui else None,
        since=t0,
        limit=limit,
    )
    if as_json:
        emit(rows)
        return
    _print_readings(rows)


def _print_readings(rows: list[dict[str, Any]]) -> None:
    t = Table("time", key_column("dev_eui"), "fcnt", "port", "measurements", "rssi", "snr")
    for r in rows:
        m = ", ".join(f"{k}={v}" for k, v in r["measurements"].items()) or (
            r.get("decode_error") or r["payload"]
        )
        t.add_row(
            when(r["time"]),
            r["dev_eui"],
            str(r["fcnt"]),
            str(r["f_port"]),
            m,
            str(r["rssi"]),
            str(r["snr"]),
        )
    console.print(t)


@readings.command("tail")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--count",
    type=click.IntRange(0),
    default=0,
    help="stop after N readings (0: follow until Ctrl-C)",
)
@pass_ctx
def readings_tail(c: Ctx, as_json: bool, count: int) -> None:
    """Follow readings live (needs the daemon running)."""
    from gateway_agent.control import stream
    from gateway_agent.errors import ControlError

    if not c.online:
        fail("the daemon is not running (readings tail follows it live); use `readings show`")
    n = 0
    try:
        for r in stream(c.cfg.agent.control_path, "readings_tail"):
            if as_json:
                emit(r)
            else:
                m = (
                    " ".join(f"{k}={v}" for k, v in r["measurements"].items())
                    or r.get("decode_error")
                    or r["payload"]
                )
                click.echo(
                    f"{when(r['time'])} {r['dev_eui']} fcnt={r['fcnt']} {m} rssi={r['rssi']} snr={r['snr']}"
                )
            n += 1
            if count and n >= count:
                break
    except KeyboardInterrupt:
        pass
    except (ControlError, OSError, ValueError) as e:
        fail(f"lost the daemon's readings stream: {e}")
    if count and n < count:
        fail(f"the daemon closed the stream after {n} of {count} readings")
