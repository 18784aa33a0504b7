"""The real daemon as a subprocess (`python -m gateway_agent run --config FILE`): start, SIGKILL,
restart, readiness through its control socket, CPU seconds and peak RSS from /proc. The one
launcher: hil runs, the benchmarks and tests/agentproc.Agent all start the daemon through it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gateway_agent.control import request
from gateway_agent.errors import ControlError

REPO = Path(__file__).resolve().parent.parent


def proc_figures(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, VmHWM kB) of a live process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    hwm = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return cpu, hwm


class DaemonProcess:
    def __init__(
        self, config: Path, control: Path, db: Path, log: Path, cwd: Path | None = None
    ) -> None:
        self.config, self.control, self.db, self.log_path, self.cwd = config, control, db, log, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.cpu_done = 0.0  # CPU of previous incarnations
        self.cpu_now = 0.0
        self.peak_kb = 0
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout_s: float = 20.0, env: dict[str, str] | None = None) -> None:
        """Launch and wait until the control socket answers `ping`; `env` adds to os.environ.
        Raises RuntimeError (with the log) if the daemon exits or stays silent `timeout_s`."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway_agent", "run", "--config", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),  # noqa: SIM115
            env={**os.environ, **env} if env else None,
            cwd=self.cwd,
        )
        self.starts += 1
        self.cpu_now = 0.0
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}:{self.failure_log()}")
            try:
                request(self.control, "ping", timeout_s=1)
                return
            except ControlError:
                time.sleep(0.05)
        raise RuntimeError(f"agent did not come up:{self.failure_log()}")

    def failure_log(self) -> str:
        """What a failed start appends to its message: the log's last lines."""
        return " " + self.tail()

    def sample(self) -> None:
        if self.proc is None:
            return
        f = proc_figures(self.proc.pid)
        if f is not None:
            self.cpu_now = f[0]
            self.peak_kb = max(self.peak_kb, f[1])

    def _retire(self) -> None:
        self.cpu_done += self.cpu_now
        self.cpu_now = 0.0
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no goodbye, mid-batch if it happens to be."""
        if self.proc is not None:
            self.sample()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self._retire()

    def stop(self, timeout_s: float = 15.0) -> int:
        if self.proc is None:
            return 0
        self.sample()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._retire()
        return rc

    @property
    def cpu_s(self) -> float:
        return self.cpu_done + self.cpu_now

    def counters(self) -> dict[str, int]:
        try:
            return dict(request(self.control, "counters", timeout_s=2))
        except (ControlError, TypeError, ValueError):
            return {}

    def accepted_ids(self) -> set[str] | None:
        """Ids of every reading the agent committed (read-only; None when unreadable)."""
        try:
            db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                return {r[0] for r in db.execute("SELECT id FROM readings")}
            finally:
                db.close()
        except sqlite3.Error:
            return None

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""
