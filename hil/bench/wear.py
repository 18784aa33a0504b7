"""SD-card wear: bytes the real daemon writes per reading (`/proc/<pid>/io` write_bytes: DB, WAL,
checkpoints, log) for each durability setting and commit window, at 1 and 10 uplinks/s, with the
broker up (so outbox deletes are counted too).

`python -m hil.bench.wear [--seconds 30]` prints JSON, then one line per configuration.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from hil.broker import Mosquitto
from tests.agentproc import Agent, Forwarder
from tests.durability_kit import device_table, fleet, frame

CONFIGS = [
    ("FULL", 50),
    ("FULL", 1000),
    ("NORMAL", 50),
    ("NORMAL", 1000),
]


def write_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def measure(
    tmp: Path, port: int, sync: str, window_ms: int, rate: float, seconds: float
) -> dict[str, Any]:
    devs = fleet(20)
    agent = Agent(
        tmp,
        port,
        [device_table(d) for d in devs],
        extra={"store": {"synchronous": sync, "commit_interval_ms": window_ms}},
    )
    agent.start()
    assert agent.proc is not None
    fw = Forwarder(agent.udp_port)
    fcnt = 0
    n = 0
    for d in devs:  # warm up: first frames create rows in every table
        fw.push(frame(d, fcnt), wait_ack=False)
    fcnt += 1
    time.sleep(3)
    w0 = write_bytes(agent.proc.pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        d = devs[n % len(devs)]
        fw.push(frame(d, fcnt), wait_ack=False)
        n += 1
        if n % len(devs) == 0:
            fcnt += 1
        time.sleep(max(0.0, t0 + n / rate - time.monotonic()))
    time.sleep(max(1.0, window_ms / 1000 * 2))
    w1 = write_bytes(agent.proc.pid)
    elapsed = time.monotonic() - t0
    agent.stop()
    fw.close()
    per = (w1 - w0) / max(1, n)
    return {
        "synchronous": sync,
        "commit_interval_ms": window_ms,
        "uplinks_per_s": rate,
        "readings": n,
        "write_bytes": w1 - w0,
        "bytes_per_reading": round(per),
        "mb_per_day": round((w1 - w0) / elapsed * 86400 / 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--only", default="", help="e.g. FULL:50,NORMAL:1000")
    a = ap.parse_args()
    configs = CONFIGS
    if a.only:
        configs = [(x.split(":")[0], int(x.split(":")[1])) for x in a.only.split(",")]
    runs = []
    with tempfile.TemporaryDirectory() as d, Mosquitto(workdir=Path(d) / "mq") as broker:
        for i, (sync, win) in enumerate(configs):
            for rate in (1.0, 10.0):
                runs.append(
                    measure(Path(d) / f"r{i}-{int(rate)}", broker.port, sync, win, rate, a.seconds)
                )
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        json.dumps(
            {
                "runs": runs,
                "machine": f"{platform.machine()} {platform.python_version()}",
                "commit": rev.stdout.strip(),
            }
        )
    )
    for r in runs:
        print(
            f"{r['synchronous']:<6} commit {r['commit_interval_ms']:>4} ms at "
            f"{r['uplinks_per_s']:>4}/s: {r['bytes_per_reading']:>6} B/reading, "
            f"{r['mb_per_day']:>7} MB/day"
        )


if __name__ == "__main__":
    main()
