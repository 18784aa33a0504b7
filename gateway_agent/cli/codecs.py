"""`decode` (run a codec on a payload), `codecs list` (the codec registry) and `codecs verify`
(the repository's example frames through the codecs in use)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from gateway_agent.cli.app import DEFAULT_CONFIG, config_error_text, console, emit, fail, hex_arg
from gateway_agent.errors import AgentError, ConfigError


def parse_field_map(text: str) -> dict[str, Any]:
    """`--field-map`: a JSON object, or `field=name[,field=name...]` pairs."""
    text = text.strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as e:
            raise click.BadParameter(f"not JSON: {e}", param_hint="--field-map") from None
        if not isinstance(value, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--field-map")
        return value
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        field, sep, name = pair.partition("=")
        if not sep or not field.strip() or not name.strip():
            raise click.BadParameter(f"expected field=name, got {pair!r}", param_hint="--field-map")
        out[field.strip()] = name.strip()
    return out


def _device(config: str, eui: str) -> Any:
    """The device with this DevEUI from the config's devices file (read offline)."""
    from gateway_agent.config import read_config, read_devices

    want = hex_arg(eui, "--device", 8)
    try:
        cfg = read_config(config)
        if cfg.agent.devices_file is None:
            fail(f"{config}: agent.devices_file is not set")
        devices = read_devices(cfg.agent.devices_file)
    except ConfigError as e:
        fail(config_error_text(e))
    for dev in devices:
        if dev.dev_eui == want:
            return dev
    fail(f"no device {want.hex()} in {cfg.agent.devices_file}")


@click.command("decode")
@click.option("--codec", "codec_id", help="codec id (default: the --device's codec)")
@click.option("--fport", type=click.IntRange(0, 255), required=True)
@click.argument("hex_payload")
@click.option("--field-map", "field_map", help="JSON object, or field=name[,field=name]")
@click.option("--device", "device_eui", help="use this device's codec and settings")
@click.option("--config", "config_path", default=DEFAULT_CONFIG, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def decode_cmd(
    codec_id: str | None,
    fport: int,
    hex_payload: str,
    field_map: str | None,
    device_eui: str | None,
    config_path: str,
    as_json: bool,
) -> None:
    """Run a codec on a payload."""
    import decoders

    payload = hex_arg(hex_payload, "HEX")
    settings: dict[str, Any] = {}
    if device_eui is not None:
        dev = _device(config_path, device_eui)
        settings = dict(dev.settings)
        codec_id = codec_id or dev.codec
        if codec_id is None:
            fail(f"device {dev.dev_eui.hex()} has no codec")
    if codec_id is None:
        raise click.UsageError("give --codec, or --device")
    if field_map is not None:
        settings["field_map"] = {**settings.get("field_map", {}), **parse_field_map(field_map)}
    try:
        decoders.check_settings(settings, "settings")
    except ConfigError as e:
        fail(config_error_text(e))
    try:
        d = decoders.decode(codec_id, fport, payload, settings)
    except AgentError as e:
        fail(str(e).splitlines()[0] if str(e) else e.reason)
    out = decoders.decode_result_json(codec_id, d)
    if as_json:
        emit(out)
    else:
        for k, v in out.get("measurements", {}).items():
            click.echo(f"{k:24} {v}")
        for k, v in out.get("extras", {}).items():
            click.echo(f"{k:24} {v}  (extra)")
        for k, v in out.get("flags", {}).items():
            click.echo(f"{k:24} {v}  (flag)")
        for w in out.get("warnings", []):
            click.echo(f"warning: {w}")
        click.echo(f"object: {json.dumps(out.get('object', {}), ensure_ascii=False)}")


@click.group()
def codecs() -> None:
    """Codec registry."""


@codecs.command("list")
@click.option("--json", "as_json", is_flag=True)
def codecs_list(as_json: bool) -> None:
    import decoders

    rows = decoders.list_codecs()
    if as_json:
        emit(rows)
        return
    t = Table("codec", "vendor", "models", "class")
    for r in rows:
        t.add_row(
            r["id"],
            str(r.get("vendor", "")),
            ", ".join(r.get("models", [])),
            str(r.get("class", "")),
        )
    console.print(t)


@codecs.command("verify")
@click.option("--codec", "codec_ids", multiple=True, help="a codec id (repeatable)")
@click.option("--repository", type=click.Path(file_okay=False), help="TTN Device Repository copy")
@click.option("--config", "config_path", default=None, help="verify the devices' codecs")
@click.option("--json", "as_json", is_flag=True)
def codecs_verify(
    codec_ids: tuple[str, ...], repository: str | None, config_path: str | None, as_json: bool
) -> None:
    """Run every example frame the TTN Device Repository ships for the codecs in use (the
    config's devices, or --codec) and report mismatches. Exit 1 when any example fails."""
    import decoders

    ids = list(codec_ids)
    if config_path is not None:
        from gateway_agent.config import read_config, read_devices

        try:
            cfg = read_config(config_path)
            devices = read_devices(cfg.agent.devices_file) if cfg.agent.devices_file else []
        except ConfigError as e:
            fail(config_error_text(e))
        ids += sorted({d.codec for d in devices if d.codec})
        if repository is None and cfg.codecs.ttn_repository is not None:
            decoders.configure_codecs(cfg.codecs)
    if repository is not None:
        decoders.configure_codecs(decoders.CodecSettings(ttn_repository=_path(repository)))
    if not ids:
        raise click.UsageError("give --codec ID (repeatable) or --config")
    rows = decoders.verify_codecs(ids)
    if as_json:
        emit(rows)
    else:
        for r in rows:
            mark = "ok  " if r["ok"] else "FAIL"
            click.echo(f"{mark} {r['codec']} {r['kind']}: {r['description']}")
            for p in r["problems"]:
                click.echo(f"       {p}")
        bad = sum(not r["ok"] for r in rows)
        click.echo(f"{len(rows) - bad} of {len(rows)} ok")
    if any(not r["ok"] for r in rows):
        raise SystemExit(1)


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text).expanduser()
