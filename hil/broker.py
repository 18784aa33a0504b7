"""A private mosquitto broker on a free loopback port: start, stop, kill, restart on the same port.

Used by the tests, the hil scenarios and the demo. Never listens beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hil.ports import free_port

__all__ = ["Mosquitto", "find_mosquitto", "free_port"]

MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    for c in MOSQUITTO_CANDIDATES:
        p = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if p:
            return p
    return None


class Mosquitto:
    """One mosquitto process. `extra_conf` lines are appended to the listener block (TLS etc.)."""

    def __init__(
        self,
        port: int | None = None,
        workdir: str | Path | None = None,
        extra_conf: str = "",
        allow_anonymous: bool = True,
    ) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ga-mosq-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra_conf = extra_conf
        self.allow_anonymous = allow_anonymous
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"

    def _sets_user(self) -> bool:
        """mosquitto refuses a second `user` line: the caller's wins."""
        return any(line.split()[:1] == ["user"] for line in self.extra_conf.splitlines())

    def _write_conf(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            # As root mosquitto drops to its own user, which cannot enter pytest's 0700 temp
            # directories: no log file, no persistence, and a restart loses queued messages.
            *(["user root"] if os.geteuid() == 0 and not self._sets_user() else []),
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
        ]
        if self.extra_conf:
            lines.append(self.extra_conf)
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout_s: float = 10.0) -> None:
        conf = self._write_conf()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "mosquitto.stderr", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.tail_log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.tail_log()}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        # The port may linger in TIME_WAIT; mosquitto sets SO_REUSEADDR, so restart is immediate.
        self.start()

    def tail_log(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
