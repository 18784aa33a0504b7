"""`service install`: the systemd unit, sysusers.d and tmpfiles.d files (texts in cli/systemd.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from gateway_agent.cli.app import fail


@click.group()
def service() -> None:
    """systemd service management."""


@service.command("install")
@click.option(
    "--prefix",
    default="/opt/gateway-agent",
    show_default=True,
    help="install prefix: the venv is PREFIX/.venv (ExecStart=PREFIX/.venv/bin/gateway-agent)",
)
@click.option(
    "--root",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False),
    help="alternative root directory (image builds, tests): no systemctl call",
)
@click.option("--dry-run", is_flag=True, help="print what would be done, change nothing")
def service_install(prefix: str, root: str, dry_run: bool) -> None:
    """Install the unit, sysusers.d and tmpfiles.d files; create the user; reload systemd."""
    import gateway_agent.cli.systemd as svc

    if not prefix.startswith("/"):
        raise click.BadParameter("must be an absolute path", param_hint="--prefix")
    steps = svc.plan_install(prefix, str(Path(root).resolve()))
    exe = Path(root) / prefix.lstrip("/") / ".venv/bin/gateway-agent"
    if dry_run:
        for s in steps:
            click.echo(svc.describe(s))
    else:
        try:
            svc.apply(steps, click.echo)
        except (OSError, subprocess.CalledProcessError) as e:
            fail(f"service install: {e}")
    if not exe.exists():
        click.echo(f"note: {exe} does not exist yet (create the venv there, see docs/service.md)")
    click.echo(
        "next: put agent.toml (0640 root:gateway-agent) and devices.toml (0600 gateway-agent) in "
        "/etc/gateway-agent/, then: sudo systemctl enable --now gateway-agent"
    )
