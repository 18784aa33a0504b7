"""`config check`: validate a config file and its devices file, refusing what `run` refuses."""

from __future__ import annotations

import sys

import click

from gateway_agent.cli.app import config_error_text, emit, err_console
from gateway_agent.config import ConfigFileError, preflight, read_config
from gateway_agent.errors import ConfigError


@click.group()
def config() -> None:
    """Configuration commands."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def config_check(file: str, as_json: bool) -> None:
    """Validate a config file (and its devices file) as `run` would. Exit 2 when invalid."""
    try:
        cfg = read_config(file)
        n = len(preflight(cfg))
    except ConfigError as e:
        if as_json:
            out = {
                "valid": False,
                "key_path": e.key_path,
                "error": config_error_text(e, file=False),
            }
            if isinstance(e, ConfigFileError):
                out["file"] = str(e.file)
            emit(out)
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
