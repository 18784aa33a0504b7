"""The program's entry point: the CLI plus `run`, the one command that starts the daemon.

The only module that joins the two; the CLI itself talks to a running daemon over its socket.
"""

from __future__ import annotations

import sys

import click

from gateway_agent.cli import Ctx, make_main, pass_ctx


@click.command()
@click.option("--config", "run_config", required=False, help="Config file (overrides -c).")
@pass_ctx
def run(c: Ctx, run_config: str | None) -> None:
    """Run the daemon in the foreground (systemd runs this)."""
    from gateway_agent.daemon import run as run_daemon

    sys.exit(run_daemon(run_config or c.config_path))


main = make_main(run)
