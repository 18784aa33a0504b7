"""The field engineer's CLI (click + rich): the root group and its command groups, one module each.

While the daemon runs, reads and live actions go through its control socket; `run` (the daemon
itself) is added by the program's entry point, gateway_agent.main, never imported here.
"""

from __future__ import annotations

import click

from gateway_agent.cli import (
    alerts,
    codecs,
    config_cmd,
    devices,
    doctor,
    export,
    frame,
    outbox,
    plot,
    readings,
    report,
    service,
    status,
)
from gateway_agent.cli.app import DEFAULT_CONFIG, Ctx, pass_ctx

__all__ = ["COMMANDS", "Ctx", "main", "make_main", "pass_ctx"]

COMMANDS: tuple[click.Command, ...] = (
    alerts.alerts,
    codecs.codecs,
    codecs.decode_cmd,
    config_cmd.config,
    devices.devices,
    doctor.doctor,
    export.export,
    frame.frame,
    outbox.outbox,
    plot.plot,
    readings.readings,
    report.report,
    service.service,
    status.status,
)


def make_main(*extra: click.Command) -> click.Group:
    """A root group holding every CLI command plus `extra` (the entry point adds `run`)."""

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

    for cmd in (*COMMANDS, *extra):
        main.add_command(cmd)
    return main


main = make_main()
