"""sd_notify + watchdog against the real daemon: READY=1, WATCHDOG=1 at half of WATCHDOG_USEC,
pings stop while the event loop is frozen and resume after, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.agentproc import Agent

WATCHDOG_USEC = 400_000  # pings every 0.2 s


class NotifySocket:
    """What systemd listens on: an AF_UNIX datagram socket; records (monotonic time, message)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._recv, daemon=True)
        self.thread.start()

    def _recv(self) -> None:
        while self.running:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode()))

    def times(self, line: str) -> list[float]:
        with self.lock:
            return [t for t, m in self.messages if line in m.splitlines()]

    def wait_for(self, line: str, n: int = 1, timeout_s: float = 10.0) -> list[float]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.times(line)
            if len(got) >= n:
                return got
            time.sleep(0.02)
        return self.times(line)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path):  # type: ignore[no-untyped-def]
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


def test_watchdog_pings_stop_while_the_loop_is_blocked(
    tmp_path: Path, notify: NotifySocket
) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[])
    a.start(
        env={
            "NOTIFY_SOCKET": str(notify.path),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
            "GATEWAY_AGENT_DEBUG": "1",
        }
    )
    try:
        ready = notify.wait_for("READY=1")
        assert ready, a.log()
        pings = notify.wait_for("WATCHDOG=1", n=5, timeout_s=5)
        assert len(pings) >= 5, a.log()
        assert all(p > ready[0] for p in pings)  # never pinged before ready
        gaps = [b - a_ for a_, b in zip(pings, pings[1:], strict=False)]
        assert max(gaps) < 0.6  # half of WATCHDOG_USEC, with slack for a loaded runner

        block_s = 2.0
        t_block = time.monotonic()
        ans = a.ask("debug_block_loop", seconds=block_s)
        t_unblock = time.monotonic()
        assert ans == {"blocked_s": block_s}
        assert t_unblock - t_block >= block_s
        during = [t for t in notify.times("WATCHDOG=1") if t_block + 0.3 < t < t_unblock - 0.3]
        assert during == [], "the daemon pinged while its event loop was frozen"

        n_before = len([t for t in notify.times("WATCHDOG=1") if t <= t_unblock])
        after = notify.wait_for("WATCHDOG=1", n=n_before + 3, timeout_s=5)
        assert len([t for t in after if t > t_unblock]) >= 3, a.log()
    finally:
        rc = a.stop()
    assert rc == 0, a.log()
    assert notify.wait_for("STOPPING=1", timeout_s=3), a.log()
    stopping = notify.times("STOPPING=1")[0]
    assert all(t <= stopping for t in notify.times("READY=1"))


def test_debug_command_is_absent_without_the_env_flag(tmp_path: Path) -> None:
    from gateway_agent.errors import ControlError

    a = Agent(tmp_path, broker_port=None, devices=[])
    a.start(env={"GATEWAY_AGENT_DEBUG": "0"})
    try:
        with pytest.raises(ControlError, match="unknown command"):
            a.ask("debug_block_loop", seconds=1)
    finally:
        assert a.stop() == 0


def test_no_watchdog_env_means_no_pings(tmp_path: Path, notify: NotifySocket) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[])
    a.start(env={"NOTIFY_SOCKET": str(notify.path)})
    try:
        assert notify.wait_for("READY=1"), a.log()
        time.sleep(1.0)
        assert notify.times("WATCHDOG=1") == []
    finally:
        assert a.stop() == 0
    assert notify.wait_for("STOPPING=1", timeout_s=3)
