"""MemoryDenyWriteExecute=yes does not break the agent: run Python, QuickJS codecs, cryptography
and the real daemon under the kernel's own MDWE (prctl PR_SET_MDWE, what systemd sets up)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway_agent.control import request
from gateway_agent.errors import ControlError
from tests.agentproc import REPO, Agent

PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1


def _enable_mdwe() -> None:  # runs in the child between fork and exec; inherited across exec
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


CHILD = r"""
import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
wx = libc.mmap(None, 4096, 7, 0x22, -1, 0)  # PROT_READ|WRITE|EXEC, MAP_PRIVATE|ANONYMOUS
import decoders
d = decoders.decode("js:elsys-ers-co2-v2", 5, bytes.fromhex("0100e6022906019a070e10"))
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.ciphers import algorithms
c = CMAC(algorithms.AES(bytes(16)))
c.update(b"gateway-agent")
import sqlite3
db = sqlite3.connect(":memory:")
print(json.dumps({
    "mdwe": libc.prctl(66, 0, 0, 0, 0),
    "wx_mmap_failed": wx in (None, ctypes.c_void_p(-1).value),
    "object": dict(d.object),
    "cmac": c.finalize().hex(),
    "sqlite": db.execute("select 6*7").fetchone()[0],
}))
"""


def test_python_quickjs_and_crypto_work_under_mdwe() -> None:
    import json

    r = subprocess.run(
        [sys.executable, "-c", CHILD],
        preexec_fn=_enable_mdwe,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["mdwe"] == PR_MDWE_REFUSE_EXEC_GAIN  # the restriction really was in force
    assert out["wx_mmap_failed"] is True  # ... and a JIT-style W+X mapping is refused
    assert out["object"] == {"temperature": 23, "humidity": 41, "co2": 410, "vdd": 3600}
    assert len(out["cmac"]) == 32
    assert out["sqlite"] == 42


def test_daemon_runs_under_mdwe(tmp_path: Path) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[])
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway_agent", "run", "--config", str(a.config_path)],
        stdout=subprocess.DEVNULL,
        stderr=open(a.log_path, "ab"),  # noqa: SIM115
        cwd=REPO,
        preexec_fn=_enable_mdwe,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 15
        pong = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                pong = request(a.control, "ping", timeout_s=1)
                break
            except ControlError:
                time.sleep(0.05)
        assert pong is not None, a.log()
        assert request(a.control, "status")["daemon"]["running"] is True
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(15)
    assert rc == 0, a.log()
