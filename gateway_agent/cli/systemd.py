"""systemd integration files (unit, sysusers.d, tmpfiles.d) and `service install`'s plan.

The texts live here so a non-editable pip install can still install them; `systemd/` in the repo
holds the same files rendered for the default prefix (a test keeps them identical).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PREFIX = "/opt/gateway-agent"
UNIT_NAME = "gateway-agent.service"
USER = "gateway-agent"

# Hardening notes (systemd 252, Raspberry Pi OS Bookworm):
# - a real system user, not DynamicUser: the DB and devices file outlive the unit and installers
#   add themselves to the group to use the control socket;
# - PrivateUsers stays off: it would unmap the dialout group (serial modems) and the socket group;
# - no IPAddressAllow: the broker may be anywhere; PrivateNetwork is impossible (UDP 1700, MQTT);
# - MemoryDenyWriteExecute is safe: CPython and QuickJS interpret, nothing JITs;
# - AF_NETLINK is not needed: glibc's getaddrinfo falls back when netlink is refused.
UNIT = """\
[Unit]
Description=gateway-agent LoRaWAN edge agent (radio -> SQLite -> MQTT)
Documentation=file:{prefix}/src/docs/service.md man:systemd.exec(5)
Wants=network-online.target time-sync.target
After=network-online.target time-sync.target
# Keep retrying forever (unattended gateway); RestartSec paces a crash loop.
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
ExecStart={prefix}/.venv/bin/gateway-agent run --config /etc/gateway-agent/agent.toml
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=30
Restart=on-failure
RestartSec=10
TimeoutStartSec=90
TimeoutStopSec=30
User=gateway-agent
Group=gateway-agent
SupplementaryGroups=dialout
StateDirectory=gateway-agent
StateDirectoryMode=0750
ConfigurationDirectory=gateway-agent
RuntimeDirectory=gateway-agent
RuntimeDirectoryMode=0750
UMask=0077
Environment=PYTHONDONTWRITEBYTECODE=1

# Serial LoRa modems only (USB-serial, CDC-ACM, Pi UARTs); everything else in /dev is hidden.
DevicePolicy=closed
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyAMA rw
DeviceAllow=char-ttyS rw

NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateIPC=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
KeyringMode=private
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""

SYSUSERS = """\
# sysusers.d(5): the service user of gateway-agent (home = its state directory, no login).
u gateway-agent - "gateway-agent LoRaWAN edge agent" /var/lib/gateway-agent /usr/sbin/nologin
"""

TMPFILES = """\
# tmpfiles.d(5): ownership and modes gateway-agent relies on (invariant 6: keys are 0600).
# Z repairs a database created by `sudo gateway-agent devices ...` while the service was stopped.
d /var/lib/gateway-agent 0750 gateway-agent gateway-agent -
Z /var/lib/gateway-agent - gateway-agent gateway-agent -
d /etc/gateway-agent 0755 root root -
z /etc/gateway-agent/agent.toml 0640 root gateway-agent -
z /etc/gateway-agent/devices.toml 0600 gateway-agent gateway-agent -
z /etc/gateway-agent/mqtt-password 0600 gateway-agent gateway-agent -
"""

FILES = {
    "gateway-agent.service": ("/etc/systemd/system/gateway-agent.service", UNIT),
    "gateway-agent.sysusers": ("/etc/sysusers.d/gateway-agent.conf", SYSUSERS),
    "gateway-agent.tmpfiles": ("/etc/tmpfiles.d/gateway-agent.conf", TMPFILES),
}


def render(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The text of one of FILES, with the install prefix substituted."""
    return FILES[name][1].replace("{prefix}", prefix.rstrip("/") or "/")


@dataclass(frozen=True, slots=True)
class Step:
    """One thing `service install` does: write a file (`argv` empty) or run a command."""

    what: str
    path: Path | None = None
    content: str = ""
    mode: int = 0o644
    argv: tuple[str, ...] = ()


def plan_install(prefix: str = DEFAULT_PREFIX, root: str = "/") -> list[Step]:
    """Files to write under `root` and commands to run. With root != "/" (tests, image builds)
    sysusers/tmpfiles get --root and systemctl is not called."""
    r = Path(root)
    steps = []
    written: dict[str, Path] = {}
    for name, (dest, _) in FILES.items():
        p = r / dest.lstrip("/")
        written[name] = p
        steps.append(Step(f"write {dest}", path=p, content=render(name, prefix)))
    root_opt = () if r == Path("/") else (f"--root={r}",)
    steps.append(
        Step(
            "create the gateway-agent system user",
            argv=("systemd-sysusers", *root_opt, str(written["gateway-agent.sysusers"])),
        )
    )
    steps.append(
        Step(
            "create /var/lib/gateway-agent and fix modes",
            argv=(
                "systemd-tmpfiles",
                "--create",
                *root_opt,
                str(written["gateway-agent.tmpfiles"]),
            ),
        )
    )
    if not root_opt:
        steps.append(Step("reload systemd", argv=("systemctl", "daemon-reload")))
    return steps


def describe(step: Step) -> str:
    if step.argv:
        return "run   " + " ".join(step.argv)
    return f"write {step.path} ({step.mode:o}, {len(step.content)} bytes)"


def apply(steps: list[Step], echo: Callable[[str], None]) -> None:
    """Do the steps in order; a failing command raises CalledProcessError (output echoed)."""
    for s in steps:
        echo(describe(s))
        if s.argv:
            r = subprocess.run(s.argv, capture_output=True, text=True, check=False)
            for line in (r.stdout + r.stderr).splitlines():
                echo("      " + line)
            if r.returncode != 0:
                raise subprocess.CalledProcessError(r.returncode, s.argv, r.stdout, r.stderr)
        else:
            assert s.path is not None
            s.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = s.path.with_name(s.path.name + ".tmp")
            tmp.write_text(s.content, encoding="utf-8")
            tmp.chmod(s.mode)
            tmp.replace(s.path)
