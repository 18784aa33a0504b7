"""The systemd unit verifies on systemd 252, scores <= 2.0 exposure, and `service install` works
(--dry-run, and for real into a temporary root with systemd-sysusers / systemd-tmpfiles)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway_agent.cli import main
from gateway_agent.cli import systemd as service
from gateway_agent.config import load_config, load_devices

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def runnable_copy(tmp: Path, text: str) -> Path:
    """The unit with ExecStart pointing at this venv's real entry point (verify checks it exists)."""
    exe = Path(sys.executable).parent / "gateway-agent"
    assert exe.exists(), exe
    p = tmp / "gateway-agent.service"
    p.write_text(text.replace("/opt/gateway-agent/.venv/bin/gateway-agent", str(exe)))
    return p


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("name", sorted(service.FILES))
def test_repo_files_are_the_rendered_templates(name: str) -> None:
    assert (SYSTEMD / name).read_text() == service.render(name)


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    r = verify(runnable_copy(tmp_path, (SYSTEMD / "gateway-agent.service").read_text()))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr  # verify only warns (rc 0) on unknown keys


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """Negative control: the check above would see a typo or an invalid value."""
    text = (SYSTEMD / "gateway-agent.service").read_text()
    bad = text.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes").replace(
        "WatchdogSec=30", "WatchdogSec=thirty"
    )
    r = verify(runnable_copy(tmp_path, bad))
    assert "ProtectHomes" in r.stderr
    assert "thirty" in r.stderr


def test_security_exposure_at_most_2(tmp_path: Path) -> None:
    unit = runnable_copy(tmp_path, (SYSTEMD / "gateway-agent.service").read_text())
    r = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


def test_unit_contract() -> None:
    s = unit_settings((SYSTEMD / "gateway-agent.service").read_text())
    assert s["ExecStart"] == [
        "/opt/gateway-agent/.venv/bin/gateway-agent run --config /etc/gateway-agent/agent.toml"
    ]
    for k, v in {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "User": "gateway-agent",
        "SupplementaryGroups": "dialout",
        "StateDirectory": "gateway-agent",
        "ConfigurationDirectory": "gateway-agent",
        "DevicePolicy": "closed",
        "UMask": "0077",
        "MemoryDenyWriteExecute": "yes",
        "ProtectSystem": "strict",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }.items():
        assert s[k] == [v], k
    assert "DynamicUser" not in s
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw"} <= set(s["DeviceAllow"])
    assert "IPAddressDeny" not in s  # the broker may be remote


def test_prefix_is_substituted() -> None:
    text = service.render("gateway-agent.service", "/srv/ga/")
    assert "ExecStart=/srv/ga/.venv/bin/gateway-agent run" in text
    assert "{prefix}" not in text


def test_examples_are_valid_config() -> None:
    cfg = load_config(tomllib.loads((REPO / "examples/agent.toml").read_text()), Path("/etc/x"))
    assert cfg.agent.state_dir == Path("/var/lib/gateway-agent")
    assert cfg.agent.control_path == Path("/run/gateway-agent/control.sock")
    assert cfg.metrics.listen == ("127.0.0.1", 9108)
    devs = load_devices(tomllib.loads((REPO / "examples/devices.toml").read_text()))
    assert {d.activation for d in devs} == {"abp", "otaa"}


def test_service_install_dry_run_changes_nothing(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["service", "install", "--dry-run", "--root", str(tmp_path), "--prefix", "/srv/ga"]
    )
    assert r.exit_code == 0, r.output
    assert f"write {tmp_path}/etc/systemd/system/gateway-agent.service" in r.output
    assert "run   systemd-sysusers --root=" in r.output
    assert "run   systemd-tmpfiles --create --root=" in r.output
    assert "systemctl" not in r.output.split("next:")[0]  # never reload the host from a root dir
    assert "/srv/ga/.venv/bin/gateway-agent does not exist" in r.output
    assert list(tmp_path.iterdir()) == []


def test_service_install_plan_on_the_real_root() -> None:
    steps = service.plan_install()
    assert [s.argv[0] for s in steps if s.argv] == [
        "systemd-sysusers",
        "systemd-tmpfiles",
        "systemctl",
    ]
    assert all("--root" not in " ".join(s.argv) for s in steps)
    assert steps[0].path == Path("/etc/systemd/system/gateway-agent.service")


@pytest.mark.skipif(os.geteuid() != 0, reason="tmpfiles chown needs root; dry-run covered above")
def test_service_install_into_a_root_dir(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    r = CliRunner().invoke(main, ["service", "install", "--root", str(root)])
    assert r.exit_code == 0, r.output
    unit = root / "etc/systemd/system/gateway-agent.service"
    assert unit.read_text() == service.render("gateway-agent.service")
    passwd = (root / "etc/passwd").read_text()
    m = re.search(r"^gateway-agent:x:(\d+):(\d+):.*:/var/lib/gateway-agent:", passwd, re.M)
    assert m, passwd
    state = root / "var/lib/gateway-agent"
    st = state.stat()
    assert (st.st_uid, st.st_gid) == (int(m.group(1)), int(m.group(2)))
    assert st.st_mode & 0o777 == 0o750
    # Running it again is harmless (idempotent user creation, files replaced).
    r2 = CliRunner().invoke(main, ["service", "install", "--root", str(root)])
    assert r2.exit_code == 0, r2.output
    lines = (root / "etc/passwd").read_text().splitlines()
    assert sum(line.startswith("gateway-agent:") for line in lines) == 1
