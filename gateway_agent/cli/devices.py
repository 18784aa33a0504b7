"""`devices`: list, show, add, remove, import, export and queue downlinks (keys never printed)."""

from __future__ import annotations

import json
import sys
import tomllib
from typing import Any

import click
import tomli_w
from rich.table import Table

from gateway_agent.cli.app import (
    Ctx,
    ask_or_read,
    config_error_text,
    console,
    emit,
    fail,
    hex_arg,
    pass_ctx,
)
from gateway_agent.cli.tables import ago, key_column, when
from gateway_agent.config import in_file, load_devices, read_toml
from gateway_agent.errors import ConfigError
from gateway_agent.rules.config import MAX_DOWNLINK
from gateway_agent.store import views


@click.group()
def devices() -> None:
    """Provisioned devices (keys are never printed)."""


@devices.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def devices_list(c: Ctx, as_json: bool) -> None:
    rows = ask_or_read(c, "devices", views.devices_view)
    if as_json:
        emit(rows)
        return
    t = Table(
        key_column("dev_eui"),
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
            ago(r["last_seen"]),
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
    rows = ask_or_read(c, "devices", views.devices_view)
    row = next((r for r in rows if r["dev_eui"] == eui), None)
    if row is None:
        fail(f"unknown device {eui}")
    if as_json:
        emit(row)
        return
    for k, v in row.items():
        if k == "last_seen":
            v = f"{when(v)} ({ago(v)})" if v else "never"
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
            except (ValueError, RecursionError):  # not TOML (TOMLDecodeError), a 4300+ digit int
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
@click.option(
    "--from",
    "source",
    type=click.Choice(["toml", "tts", "chirpstack", "csv"]),
    default="toml",
    show_default=True,
    help="toml: a devices file ([[device]]); tts: `ttn-lw-cli end-devices list/get` JSON; "
    "chirpstack: ChirpStack v4 device JSON; csv: dev_eui,name,class,codec,join_eui,app_key,"
    "dev_addr,nwk_s_key,app_s_key,tags",
)
@click.option("--dry-run", is_flag=True, help="show what would be added or changed; write nothing")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def devices_import(c: Ctx, file: str, source: str, dry_run: bool, as_json: bool) -> None:
    """Import devices: a devices TOML file, or another network server's export (--from)."""
    from gateway_agent.cli import devices_import as di

    if source != "toml" or dry_run or as_json:
        imps = _toml_imports(file) if source == "toml" else di.check(c, file, source)
        rows = di.plan(c, imps)
        written = 0 if dry_run else di.write(c, imps)
        di.show(rows, dry_run, as_json, written)
        return
    try:
        doc = read_toml(file)  # bad bytes, syntax, size: the file and the offset or line
        raw = doc.get("device", [])
        load_devices(doc)
    except ConfigError as e:
        fail(config_error_text(in_file(file, e)), 2)
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


def _toml_imports(file: str) -> list[Any]:
    from gateway_agent.config.importers import Imported

    try:
        doc = read_toml(file)
        load_devices(doc)
    except ConfigError as e:
        fail(config_error_text(in_file(file, e)), 2)
    return [Imported(dict(d), f"device[{i}]") for i, d in enumerate(doc.get("device", []))]


# The devices-file keys `devices export` writes: never key material.
TOML_KEYS = ("dev_eui", "name", "class", "codec", "tags", "dev_addr", "join_eui", "settings")


@devices.command("export")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def devices_export(c: Ctx, as_json: bool) -> None:
    """Export device definitions without keys (TOML, or JSON with --json)."""
    rows = ask_or_read(c, "devices", views.devices_view)
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
    if not out:
        return
    # `activation` is no key of a devices file: it follows from dev_addr (ABP) or join_eui (OTAA).
    click.echo(
        "# keys not exported: add nwk_s_key and app_s_key to ABP devices (dev_addr), "
        "app_key to OTAA devices (join_eui)\n"
    )
    devs = [{k: r[k] for k in TOML_KEYS if r.get(k)} for r in out]
    click.echo(tomli_w.dumps({"device": devs}), nl=False)


@devices.command("downlink")
@click.argument("dev_eui")
@click.option("--fport", type=click.IntRange(1, 223), help="required with HEX; with --object")
@click.option("--confirmed", is_flag=True)
@click.option(
    "--object",
    "obj",
    help="""a JSON object the device's codec encodes (encodeDownlink), e.g. '{"interval": 600}'""",
)
@click.argument("hex_payload", required=False)
@pass_ctx
def devices_downlink(
    c: Ctx,
    dev_eui: str,
    fport: int | None,
    confirmed: bool,
    obj: str | None,
    hex_payload: str | None,
) -> None:
    """Queue an application downlink (HEX, or --object through the device's codec); it goes out
    in the device's next RX1 window."""
    eui = hex_arg(dev_eui, "DEV_EUI", 8)
    if (obj is None) == (hex_payload is None):
        raise click.UsageError("give either HEX or --object")
    if obj is not None:
        _downlink_object(c, eui, fport, confirmed, _json_object(obj))
        return
    assert hex_payload is not None
    if fport is None:
        raise click.UsageError("--fport is required with HEX")
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


def _json_object(text: str) -> dict[str, Any]:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise click.BadParameter(f"not JSON: {e}", param_hint="--object") from None
    if not isinstance(obj, dict):
        raise click.BadParameter(
            f"expected a JSON object, got {type(obj).__name__}", param_hint="--object"
        )
    return obj


def _downlink_object(
    c: Ctx, eui: bytes, fport: int | None, confirmed: bool, obj: dict[str, Any]
) -> None:
    """The device's codec encodes `obj` (in the daemon while it runs, here otherwise)."""
    if c.online:
        ans = c.act("downlink", dev_eui=eui.hex(), object=obj, f_port=fport, confirmed=confirmed)
        seq, port, payload = ans["queued"], ans["f_port"], bytes.fromhex(ans["payload"])
    else:
        import decoders
        from gateway_agent.config.downlinks import ObjectError, encode_object

        decoders.configure_codecs(c.cfg.codecs)
        store = c.store()
        try:
            found = store.device(eui)
            if found is None:
                fail(f"unknown device {eui.hex()}")
            try:
                port, payload = encode_object(found[0], obj, fport)
            except ObjectError as e:
                fail(str(e))
            seq = store.queue_downlink(eui, port, payload, confirmed)
        finally:
            store.close()
    click.echo(f"queued downlink {seq} for {eui.hex()}: fPort {port}, {payload.hex()}")
