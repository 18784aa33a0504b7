"""`readings show` (stored readings), `readings tail` (follow the daemon live) and `readings import`
(history from a previous system)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
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


MAX_LISTED = 20  # problems printed for a bad import file


@readings.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="default: sniffed")
@click.option("--forward", is_flag=True, help="also send upstream (not supported yet)")
@click.option("--dry-run", is_flag=True, help="check and count; store nothing")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def readings_import(
    c: Ctx, file: Path, fmt: str | None, forward: bool, dry_run: bool, as_json: bool
) -> None:
    """Import history (CSV or JSON lines: devEui, time, measurements; docs/reports.md): stored
    marked as imported, all or nothing, used by reports, never forwarded as live traffic."""
    if forward:
        # An upstream reading message needs a DevAddr, FCnt and radio metadata an import does
        # not have; a made-up one would look like live traffic.
        fail("--forward is not supported: imported readings are stored for reports only", 2)
    rows = _parse_file(file, fmt)
    summary = _import_online(c, rows, dry_run) if c.online else _import_offline(c, rows, dry_run)
    if as_json:
        emit(summary)
    else:
        verb = "dry run:" if dry_run else "imported"
        new = "would be new" if dry_run else "new"
        click.echo(
            f"{verb} {summary['rows']} readings: {summary['new']} {new},"
            f" {summary['present']} already present; {summary['devices']} device(s);"
            f" {_iso(summary['first'])} .. {_iso(summary['last'])}"
        )


def _iso(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_file(file: Path, fmt: str | None) -> list[Any]:
    from gateway_agent.reports.importer import ImportFileError, parse_import

    try:
        raw = file.read_bytes()
    except OSError as e:
        fail(f"{file}: {e.strerror or e}")
    skip = 3 if raw.startswith(b"\xef\xbb\xbf") else 0  # a BOM (spreadsheet exports)
    try:
        text = raw[skip:].decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"{file}: not UTF-8 text (bad byte at offset {e.start + skip}); nothing imported")
    try:
        return parse_import(text, fmt)
    except ImportFileError as e:
        for n, p in e.problems[:MAX_LISTED]:
            click.echo(f"  line {n}: {p}" if n else f"  {p}", err=True)
        if e.count > MAX_LISTED:
            click.echo(f"  ... and {e.count - MAX_LISTED} more", err=True)
        fail(f"{file}: {e.count} problem(s), nothing imported")


def _import_offline(c: Ctx, rows: list[Any], dry_run: bool) -> dict[str, Any]:
    from gateway_agent.errors import AgentError
    from gateway_agent.store import Store

    path = c.cfg.agent.db_path
    if not path.exists():
        fail(f"no database at {path}: add the devices first (`gateway-agent devices add`)")
    try:
        store = Store(path, c.cfg.store.synchronous, readonly=dry_run)
        try:
            return dict(store.import_readings(rows, dry_run))
        finally:
            store.close()
    except AgentError as e:
        fail(str(e))


def _chunks(rows: list[Any]) -> list[list[Any]]:
    """Rows as JSON for control requests, each well under the socket's MAX_REQUEST."""
    import json

    from gateway_agent.control import MAX_REQUEST
    from gateway_agent.store.imports import to_json

    out: list[list[Any]] = [[]]
    size = 0
    for item in to_json(rows):
        n = len(json.dumps(item)) + 2
        if out[-1] and size + n > MAX_REQUEST // 2:
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    return out


def _import_online(c: Ctx, rows: list[Any], dry_run: bool) -> dict[str, Any]:
    """Through the daemon's store thread. One request is one transaction; a file past one
    request is checked whole first (a dry run per chunk: unknown devices refuse it all), then
    written chunk by chunk (re-running after a failure adds only what is missing)."""
    from gateway_agent.errors import ControlError

    chunks = _chunks(rows)
    passes = [True] if dry_run else ([False] if len(chunks) == 1 else [True, False])
    total: dict[str, Any] = {}
    try:
        for dry in passes:
            total = {"rows": 0, "new": 0, "present": 0}
            for ch in chunks:
                r = c.ask("readings_import", rows=ch, dry_run=dry, timeout_s=300)
                for k in total:
                    total[k] += int(r[k])
    except ControlError as e:
        fail(str(e))
    times = [r.time for r in rows]
    return {
        **total,
        "devices": len({r.dev_eui for r in rows}),
        "first": min(times),
        "last": max(times),
        "dry_run": dry_run,
    }
