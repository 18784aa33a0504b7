"""CLI commands over devices, readings, alerts, outbox and status (online or offline)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
import time
import tomllib
from typing import Any

import click
from rich.table import Column, Table

from gateway_agent.cli import (
    Ctx,
    config_error_text,
    console,
    emit,
    fail,
    hex_arg,
    main,
    pass_ctx,
)
from gateway_agent.config import load_devices
from gateway_agent.errors import AgentError, ConfigError
from gateway_agent.rules.config import MAX_DOWNLINK
from gateway_agent.store import views


def _ago(t: float | None) -> str:
    if not t:
        return "never"
    s = time.time() - t
    if s < 120:
        return f"{s:.0f}s ago"
    if s < 7200:
        return f"{s / 60:.0f}m ago"
    if s < 172800:
        return f"{s / 3600:.0f}h ago"
    return f"{s / 86400:.0f}d ago"


def _key_column(header: str, values: list[str] | None = None) -> Column:
    """An identifier column that is never cut with an ellipsis: it gets copied into commands."""
    width = max([16, *(len(v) for v in values or [])])
    return Column(header, no_wrap=True, min_width=width, overflow="fold")


def _when(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S") if t else "-"


def _short_when(t: float | None) -> str:
    """HH:MM:SS today, MM-DD HH:MM before."""
    if not t:
        return "-"
    d = dt.datetime.fromtimestamp(t)
    return d.strftime("%H:%M:%S" if d.date() == dt.date.today() else "%m-%d %H:%M")


def parse_since(s: str | None) -> float | None:
    """`30m`, `2h`, `7d`, an ISO date/time, or seconds."""
    if not s:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if s[-1:] in units and s[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(s[:-1]) * units[s[-1]]
    try:
        return dt.datetime.fromisoformat(s).timestamp()
    except ValueError:
        raise click.BadParameter(
            "expected e.g. 30m, 2h, 7d or an ISO date", param_hint="--since"
        ) from None


def _get(c: Ctx, cmd: str, offline: Any, **args: Any) -> Any:
    try:
        if c.online:
            return c.ask(cmd, **args)
        store = c.store()
        try:
            return offline(store)
        finally:
            store.close()
    except AgentError as e:
        fail(str(e))


# --------------------------------------------------------------------------- status


@main.command()
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def status(c: Ctx, as_json: bool) -> None:
    """One screen: daemon, gateways, devices, outbox, upstream, DB, clock."""
    st = _get(c, "status", lambda s: views.status_view(s, c.cfg.store.max_db_mb))
    if as_json:
        emit(st)
        return
    from gateway_agent.cli.render import render_status

    render_status(console, st)


# --------------------------------------------------------------------------- devices


@main.group()
def devices() -> None:
    """Provisioned devices (keys are never printed)."""


@devices.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def devices_list(c: Ctx, as_json: bool) -> None:
    rows = _get(c, "devices", views.devices_view)
    if as_json:
        emit(rows)
        return
    t = Table(
        _key_column("dev_eui"),
        *("name", "class", "codec", "act", "last seen", "rssi", "snr", "battery", "fcnt"),
    )
    for r in rows:
        batt = (
            f"{r['battery_v']} V"
            if r.get("battery_v") is not None
            else (f"{r['battery_pct']} %" if r.get("battery_pct") is not None else "-")
        )
        t.add_row(
            r["dev_eui"],
            r["name"],
            r["class"],
            r["codec"] or "-",
            r["activation"],
            _ago(r["last_seen"]),
            str(r["rssi"] if r["rssi"] is not None else "-"),
            str(r["snr"] if r["snr"] is not None else "-"),
            batt,
            str(r["fcnt_up"] if r["fcnt_up"] is not None else "-"),
        )
    console.print(t)


@devices.command("show")
@click.argument("dev_eui")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def devices_show(c: Ctx, dev_eui: str, as_json: bool) -> None:
    eui = hex_arg(dev_eui, "DEV_EUI", 8).hex()
    rows = _get(c, "devices", views.devices_view)
    row = next((r for r in rows if r["dev_eui"] == eui), None)
    if row is None:
        fail(f"unknown device {eui}")
    if as_json:
        emit(row)
        return
    for k, v in row.items():
        if k == "last_seen":
            v = f"{_when(v)} ({_ago(v)})" if v else "never"
        elif isinstance(v, (list, dict)):
            v = json.dumps(v, ensure_ascii=False)
        elif v is None:
            v = "-"
        click.echo(f"{k:14} {v}")


def _put(c: Ctx, devs_raw: list[dict[str, Any]], origin: str = "cli") -> int:
    try:
        devs = load_devices({"device": devs_raw})
    except ConfigError as e:
        fail(config_error_text(e), 2)
    if c.online:
        return int(c.act("devices_put", devices=devs_raw, origin=origin)["upserted"])
    store = c.store() if c.cfg.agent.db_path.exists() else _new_store(c)
    try:
        return int(store.upsert_devices(devs, origin))
    finally:
        store.close()


def _new_store(c: Ctx) -> Any:
    from gateway_agent.store import Store

    c.cfg.agent.state_dir.mkdir(parents=True, exist_ok=True)
    return Store(c.cfg.agent.db_path, c.cfg.store.synchronous)


@devices.command("add")
@click.argument("dev_eui")
@click.option("--name", default="")
@click.option("--class", "device_class", default="other")
@click.option("--codec")
@click.option("--tag", "tags", multiple=True)
@click.option("--dev-addr")
@click.option(
    "--nwk-s-key", envvar="GA_NWK_S_KEY", help="or env GA_NWK_S_KEY (keeps it out of shell history)"
)
@click.option("--app-s-key", envvar="GA_APP_S_KEY", help="or env GA_APP_S_KEY")
@click.option("--join-eui")
@click.option("--app-key", envvar="GA_APP_KEY", help="or env GA_APP_KEY")
@click.option(
    "--setting", "settings", multiple=True, help="KEY=VALUE per-device setting (TOML value)"
)
@pass_ctx
def devices_add(
    c: Ctx,
    dev_eui: str,
    name: str,
    device_class: str,
    codec: str | None,
    tags: tuple[str, ...],
    dev_addr: str | None,
    nwk_s_key: str | None,
    app_s_key: str | None,
    join_eui: str | None,
    app_key: str | None,
    settings: tuple[str, ...],
) -> None:
    """Provision (or update) one ABP or OTAA device."""
    raw: dict[str, Any] = {
        "dev_eui": dev_eui,
        "name": name,
        "class": device_class,
        "tags": list(tags),
    }
    for k, v in (
        ("codec", codec),
        ("dev_addr", dev_addr),
        ("nwk_s_key", nwk_s_key),
        ("app_s_key", app_s_key),
        ("join_eui", join_eui),
        ("app_key", app_key),
    ):
        if v:
            raw[k] = v
    if settings:
        st: dict[str, Any] = {}
        for kv in settings:
            k, _, v = kv.partition("=")
            try:
                st[k] = tomllib.loads(f"v = {v}")["v"]
            except tomllib.TOMLDecodeError:
                st[k] = v
        raw["settings"] = st
    _put(c, [raw])
    click.echo(f"added {hex_arg(dev_eui, 'DEV_EUI', 8).hex()}")


@devices.command("remove")
@click.argument("dev_eui")
@pass_ctx
def devices_remove(c: Ctx, dev_eui: str) -> None:
    eui = hex_arg(dev_eui, "DEV_EUI", 8)
    if c.online:
        ok = c.act("device_remove", dev_eui=eui.hex())["removed"]
    else:
        store = c.store()
        try:
            ok = store.remove_device(eui)
        finally:
            store.close()
    if not ok:
        fail(f"unknown device {eui.hex()}")
    click.echo(f"removed {eui.hex()}")


@devices.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@pass_ctx
def devices_import(c: Ctx, file: str) -> None:
    """Import a devices TOML file ([[device]] tables)."""
    try:
        with open(file, "rb") as f:
            doc = tomllib.load(f)
        raw = doc.get("device", [])
        load_devices(doc)
    except (OSError, tomllib.TOMLDecodeError) as e:
        fail(f"{file}: {e}", 2)
    except ConfigError as e:
        fail(f"{file}: {config_error_text(e)}", 2)
    from rich.progress import track

    n = 0
    chunk = 200
    for i in track(
        range(0, len(raw), chunk),
        description="importing",
        console=console,
        disable=not sys.stderr.isatty(),
    ):
        n += _put(c, raw[i : i + chunk], origin="import")
    click.echo(f"imported {n} devices")


@devices.command("export")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def devices_export(c: Ctx, as_json: bool) -> None:
    """Export device definitions without keys (TOML, or JSON with --json)."""
    rows = _get(c, "devices", views.devices_view)
    out = [
        {
            k: r[k]
            for k in (
                "dev_eui",
                "name",
                "class",
                "codec",
                "tags",
                "activation",
                "dev_addr",
                "join_eui",
                "settings",
            )
        }
        for r in rows
    ]
    if as_json:
        emit(out)
        return
    for r in out:
        click.echo("[[device]]")
        for k in ("dev_eui", "name", "class", "codec", "tags", "dev_addr", "join_eui", "settings"):
            if r.get(k):
                click.echo(f"{k} = {_toml(r[k])}")
        click.echo(f"# {r['activation']}: keys not exported\n")


def _toml(v: Any) -> str:
    """A TOML value (inline form) for `devices export`; JSON string escapes are valid TOML."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v), ensure_ascii=False)


@devices.command("downlink")
@click.argument("dev_eui")
@click.option("--fport", type=click.IntRange(1, 223), required=True)
@click.option("--confirmed", is_flag=True)
@click.argument("hex_payload")
@pass_ctx
def devices_downlink(c: Ctx, dev_eui: str, fport: int, confirmed: bool, hex_payload: str) -> None:
    """Queue an application downlink; it goes out in the device's next RX1 window."""
    eui = hex_arg(dev_eui, "DEV_EUI", 8)
    payload = hex_arg(hex_payload, "HEX")
    if len(payload) > MAX_DOWNLINK:
        raise click.UsageError(f"HEX: {len(payload)} bytes; at most {MAX_DOWNLINK} fit a frame")
    if c.online:
        seq = c.act(
            "downlink", dev_eui=eui.hex(), f_port=fport, payload=payload.hex(), confirmed=confirmed
        )["queued"]
    else:
        store = c.store()
        try:
            if store.device(eui) is None:
                fail(f"unknown device {eui.hex()}")
            seq = store.queue_downlink(eui, fport, payload, confirmed)
        finally:
            store.close()
    click.echo(f"queued downlink {seq} for {eui.hex()}")


# --------------------------------------------------------------------------- readings / alerts / outbox


@main.group()
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
    rows = _get(
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
    t = Table("time", _key_column("dev_eui"), "fcnt", "port", "measurements", "rssi", "snr")
    for r in rows:
        m = ", ".join(f"{k}={v}" for k, v in r["measurements"].items()) or (
            r.get("decode_error") or r["payload"]
        )
        t.add_row(
            _when(r["time"]),
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
                    f"{_when(r['time'])} {r['dev_eui']} fcnt={r['fcnt']} {m} rssi={r['rssi']} snr={r['snr']}"
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


@main.group()
def alerts() -> None:
    """Alerts raised by edge rules."""


@alerts.command("list")
@click.option("--open", "only_open", is_flag=True, help="only raised, unacknowledged alerts")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def alerts_list(c: Ctx, only_open: bool, limit: int, as_json: bool) -> None:
    rows = _get(
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
        _key_column("id", [a["id"] for a in rows]),
        box=None,
        pad_edge=False,
        header_style="bold",
    )
    for a in rows:
        t.add_row(
            _short_when(a["time"]),
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
        for a in _get(c, "alerts", lambda s: views.alerts_view(s, 1_000_000), limit=1_000_000)
    ]
    match = [i for i in ids if i == alert_id] or [i for i in ids if i.startswith(alert_id)]
    if not match:
        fail(f"no alert {alert_id}")
    if len(match) > 1:
        fail(f"{alert_id!r} matches {len(match)} alerts; give more of the id (`alerts list`)")
    full = match[0]
    ok = _get(c, "alert_ack", lambda s: {"acked": s.ack_alert(full)}, id=full)["acked"]
    if not ok:
        fail(f"no alert {full}")
    click.echo(f"acknowledged {full}")


@main.group()
def outbox() -> None:
    """The upstream queue."""


@outbox.command("status")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def outbox_status(c: Ctx, as_json: bool) -> None:
    st = _get(c, "outbox", views.outbox_view)
    if as_json:
        emit(st)
        return
    if not st["depth"]:
        click.echo("0 messages waiting: everything has reached the broker")
        return
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(st["by_kind"].items()))
    age = st["oldest_age_s"]
    click.echo(
        f"{st['depth']} messages waiting ({kinds})"
        + (f", oldest {_ago(time.time() - age)}" if age is not None else "")
    )


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
    Exit 0 once the outbox is empty, 1 on timeout."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    if not c.online:
        fail("the daemon is not running (nothing drains the outbox)")
    start = int(c.act("outbox")["depth"])
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
            depth = int(c.act("outbox")["depth"])
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


@main.command("export")
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
    rows = _get(
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
