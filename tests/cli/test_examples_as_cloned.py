"""#21: the examples work as cloned. git checks `examples/devices.toml` out world-readable (0644),
which `config check` refuses for a file of keys; the README's first command (`bash
scripts/demo.sh`) makes it 0600 before anything else, and the README's install step writes it 0600.
Both paths are run here on a copy made with git's modes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.agentproc import REPO


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "config", "check", str(path)],
        capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def as_cloned(tmp: Path) -> Path:
    """examples/ and scripts/demo.sh with the modes git gives them (umask 022)."""
    shutil.copytree(REPO / "examples", tmp / "examples")
    (tmp / "scripts").mkdir()
    shutil.copy(REPO / "scripts/demo.sh", tmp / "scripts/demo.sh")
    for p in (tmp / "examples").iterdir():
        p.chmod(0o644)
    (tmp / "scripts/demo.sh").chmod(0o755)
    return tmp


def test_clone_passes_after_the_readmes_first_command(tmp_path: Path) -> None:
    root = as_cloned(tmp_path)
    r = check(root / "examples/agent.toml")
    assert r.returncode == 2 and "world-readable (mode 644)" in r.stdout + r.stderr
    prep = subprocess.run(
        ["bash", str(root / "scripts/demo.sh"), "--prepare-examples"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert prep.returncode == 0, prep.stderr
    assert (root / "examples/devices.toml").stat().st_mode & 0o777 == 0o600
    r = check(root / "examples/agent.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: gateway fife-ps-017, 1 sources, 0 rules, 2 devices" in r.stdout


def test_the_install_steps_files_pass(tmp_path: Path) -> None:
    # README: install -m 640 agent.toml, install -m 600 devices.toml into /etc/gateway-agent/.
    etc = tmp_path / "etc"
    etc.mkdir()
    src = as_cloned(tmp_path / "src") / "examples"
    for name, mode in (("agent.toml", 0o640), ("devices.toml", 0o600)):
        shutil.copy(src / name, etc / name)
        os.chmod(etc / name, mode)
    r = check(etc / "agent.toml")
    assert r.returncode == 0, r.stdout + r.stderr
