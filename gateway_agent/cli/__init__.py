"""The field engineer's CLI (click + rich). `--json` on every read command; exit 0 ok, 1 failure,
2 usage error. While the daemon runs, reads and live actions go through its control socket."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.table import Table

from gateway_agent.config import Config, parse_hex, read_config, read_devices
from gateway_agent.errors import AgentError, ConfigError, ControlError

DEFAULT_CONFIG = "/etc/gateway-agent/agent.toml"
console = Console()
err_console = Console(stderr=True)


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str, ensure_ascii=False))


def fail(msg: str, code: int = 1) -> NoReturn:
    # soft_wrap: one line whatever the width (scripts read the reason; rich would wrap at 80).
    err_console.print(f"error: {msg}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


_QUOTED = re.compile(r'"[^"]*"')


def config_error_text(e: ConfigError, detail_only: bool = False) -> str:
    """The error as printed; the offending value is redacted when the key path names a key
    (config.parse_hex quotes what it got, which for a mistyped key is most of the key)."""
    last = e.key_path.rsplit(".", 1)[-1].lower()
    detail = e.detail
    if last.endswith("key"):
        detail = _QUOTED.sub('"<redacted>"', detail)
    if detail_only or not e.key_path:
        return detail
    return f"{e.key_path}: {detail}"


def hex_arg(value: str, what: str, n: int | None = None) -> bytes:
    try:
        b = parse_hex(value, what)
    except ConfigError as e:
        raise click.BadParameter(config_error_text(e, detail_only=True), param_hint=what) from None
    if n is not None and len(b) != n:
        raise click.BadParameter(f"expected {n} bytes of hex, got {len(b)}", param_hint=what)
    return b


class Ctx:
    """Lazy access to config, the control socket (daemon running) or the DB (daemon stopped)."""

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._cfg: Config | None = None
        self._online: bool | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            try:
                self._cfg = read_config(self.config_path)
            except ConfigError as e:
                fail(config_error_text(e))
        assert self._cfg is not None
        return self._cfg

    @property
    def online(self) -> bool:
        if self._online is None:
            from gateway_agent.control import request

            try:
                request(self.cfg.agent.control_path, "ping", timeout_s=3)
                self._online = True
            except ControlError:
                self._online = False
        return self._online

    def ask(self, cmd: str, **args: Any) -> Any:
        """One control request; raises ControlError (unreachable, or the daemon's error answer)."""
        from gateway_agent.control import request

        return request(self.cfg.agent.control_path, cmd, **args)

    def act(self, cmd: str, **args: Any) -> Any:
        """`ask` for commands: an error answer (e.g. unknown device) exits 1 with its reason."""
        try:
            return self.ask(cmd, **args)
        except ControlError as e:
            fail(str(e))

    def store(self) -> Any:
        from gateway_agent.store import Store

        path = self.cfg.agent.db_path
        if not path.exists():
            fail(f"no database at {path} (has the agent ever run with this config?)")
        return Store(path, self.cfg.store.synchronous)


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="GATEWAY_AGENT_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="Agent config file (env GATEWAY_AGENT_CONFIG).",
)
@click.version_option(package_name="gateway-agent")
@click.pass_context
def main(ctx: click.Context, config_path: str) -> None:
    """gateway-agent: LoRaWAN gateway edge agent."""
    ctx.obj = Ctx(config_path)


# --------------------------------------------------------------------------- run / config


@main.command()
@click.option("--config", "run_config", required=False, help="Config file (overrides -c).")
@pass_ctx
def run(c: Ctx, run_config: str | None) -> None:
    """Run the daemon in the foreground (systemd runs this)."""
    from gateway_agent.daemon import run as run_daemon

    sys.exit(run_daemon(run_config or c.config_path))


@main.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def config_check(file: str, as_json: bool) -> None:
    """Validate a config file (and its devices file). Exit 2 when invalid."""
    try:
        cfg = read_config(file)
        n = len(read_devices(cfg.agent.devices_file)) if cfg.agent.devices_file else 0
    except ConfigError as e:
        if as_json:
            emit({"valid": False, "key_path": e.key_path, "error": config_error_text(e)})
        else:
            err_console.print(
                f"invalid: {config_error_text(e)}", markup=False, highlight=False, soft_wrap=True
            )
        sys.exit(2)
    summary = {
        "valid": True,
        "gateway_id": cfg.agent.gateway_id,
        "sources": len(cfg.sources),
        "rules": len(cfg.rules),
        "devices": n,
    }
    if as_json:
        emit(summary)
    else:
        click.echo(
            f"ok: gateway {cfg.agent.gateway_id}, {len(cfg.sources)} sources, {len(cfg.rules)} rules, {n} devices"
        )


# --------------------------------------------------------------------------- frames & codecs


@main.group()
def frame() -> None:
    """LoRaWAN frame tools."""


@frame.command("decode")
@click.argument("hex_payload")
@click.option("--nwk-s-key")
@click.option("--app-s-key")
@click.option("--app-key")
@click.option("--fcnt-msb", type=click.IntRange(0, 0xFFFF))
@click.option("--dev-nonce", type=click.IntRange(0, 0xFFFF))
@click.option("--json", "as_json", is_flag=True)
def frame_decode(
    hex_payload: str,
    nwk_s_key: str | None,
    app_s_key: str | None,
    app_key: str | None,
    fcnt_msb: int | None,
    dev_nonce: int | None,
    as_json: bool,
) -> None:
    """Parse a PHYPayload (and verify/decrypt it with keys)."""
    from gateway_agent.lorawan.inspect import describe_frame

    phy = hex_arg(hex_payload, "HEX")
    keys = {
        k: hex_arg(v, k, 16) if v else None
        for k, v in (("nwk_s_key", nwk_s_key), ("app_s_key", app_s_key), ("app_key", app_key))
    }
    try:
        out = describe_frame(phy, fcnt_msb=fcnt_msb, dev_nonce=dev_nonce, **keys)
    except AgentError as e:
        fail(f"{e.reason}: {e}")
    if as_json:
        emit(out)
    else:
        for k, v in out.items():
            click.echo(f"{k:12} {v}")


@main.command("decode")
@click.option("--codec", "codec_id", required=True)
@click.option("--fport", type=click.IntRange(0, 255), required=True)
@click.argument("hex_payload")
@click.option("--json", "as_json", is_flag=True)
def decode_cmd(codec_id: str, fport: int, hex_payload: str, as_json: bool) -> None:
    """Run a codec on a payload."""
    import decoders

    payload = hex_arg(hex_payload, "HEX")
    try:
        d = decoders.decode(codec_id, fport, payload)
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


@main.group()
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


# Registering the rest of the commands on `main` (they import `main` from here).
from gateway_agent.cli import (  # noqa: E402
    data,  # noqa: F401  (devices, readings, alerts, outbox, export, status)
    field,  # noqa: F401  (plot, doctor, service)
)
