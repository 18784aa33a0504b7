"""SD-card wear: bytes the real daemon writes per reading (`/proc/<pid>/io` write_bytes: DB, WAL,
log) for each durability setting and commit window, at 1 and 10 uplinks/s, with the broker up
(outbox deletes included), plus the checkpoint that moves the run's WAL into the DB.

`python -m hil.bench.wear [--seconds 30] [--only old,new,FULL:1000] [--page-size 4096]
[--rates 1,10]` prints JSON, then one line per configuration. `old` is the commit policy shipped
before #16 (FULL, 2000 ms), `new` the shipped default of the code measured; the default run is
both, side by side, at 1 and 10 uplinks/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway_agent.config.sections import StoreConfig
from gateway_agent.store import PAGE_SIZE, Store
from hil.bench.meta import git_commit
from hil.broker import Mosquitto
from tests.agentproc import Agent, Forwarder
from tests.durability_kit import device_table, fleet, frame

OLD_DEFAULT = ("FULL", 2000)


def parse_configs(only: str) -> list[tuple[str, int]]:
    """`old`, `new` or SYNC:MS, comma separated."""
    out = []
    for x in only.split(","):
        if x == "old":
            out.append(OLD_DEFAULT)
        elif x == "new":
            out.append((StoreConfig().synchronous, StoreConfig().commit_interval_ms))
        else:
            out.append((x.split(":")[0], int(x.split(":")[1])))
    return out


def write_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def own_write_bytes() -> int:
    return write_bytes(os.getpid())


def checkpoint(db_path: Path, sync: str) -> int:
    """Bytes a full checkpoint writes now (done from here, so counted in this process): the
    daemon's WAL only checkpoints every few MB, which a 30 s run at 1/s never reaches."""
    db = sqlite3.connect(db_path, isolation_level=None, timeout=30)
    try:
        db.execute(f"PRAGMA synchronous={sync}")
        w0 = own_write_bytes()
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        return own_write_bytes() - w0
    finally:
        db.close()


def measure(
    tmp: Path,
    port: int,
    sync: str,
    window_ms: int,
    rate: float,
    seconds: float,
    page_size: int = PAGE_SIZE,
) -> dict[str, Any]:
    devs = fleet(20)
    agent = Agent(
        tmp,
        port,
        [device_table(d) for d in devs],
        extra={"store": {"synchronous": sync, "commit_interval_ms": window_ms}},
    )
    agent.state.mkdir(parents=True, exist_ok=True)
    Store(agent.state / "agent.db", sync, page_size=page_size).close()  # fixed at creation
    agent.start()
    assert agent.proc is not None
    fw = Forwarder(agent.udp_port)
    fcnt = 0
    n = 0
    for d in devs:  # warm up: first frames create rows in every table
        fw.push(frame(d, fcnt), wait_ack=False)
    fcnt += 1
    time.sleep(3)
    checkpoint(agent.state / "agent.db", sync)  # the warm-up's pages are not the run's
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
    ckpt = checkpoint(agent.state / "agent.db", sync)
    agent.stop()
    fw.close()
    total = w1 - w0 + ckpt
    return {
        "synchronous": sync,
        "commit_interval_ms": window_ms,
        "page_size": page_size,
        "uplinks_per_s": rate,
        "readings": n,
        "write_bytes": w1 - w0,
        "checkpoint_bytes": ckpt,
        "bytes_per_reading": round(total / max(1, n)),
        # The load as labelled: bytes per reading at exactly this rate for a whole day.
        "mb_per_day": round(total / max(1, n) * rate * 86400 / 1e6, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--only", default="old,new", help="e.g. old,new,FULL:50,NORMAL:1000")
    ap.add_argument("--page-size", type=int, default=PAGE_SIZE, help="for the new DB file")
    ap.add_argument("--rates", default="1,10", help="uplinks/s, comma separated")
    a = ap.parse_args()
    configs = parse_configs(a.only)
    runs = []
    with tempfile.TemporaryDirectory() as d, Mosquitto(workdir=Path(d) / "mq") as broker:
        for i, (sync, win) in enumerate(configs):
            for rate in (float(x) for x in a.rates.split(",")):
                tmp = Path(d) / f"r{i}-{rate:g}"
                runs.append(measure(tmp, broker.port, sync, win, rate, a.seconds, a.page_size))
    print(
        json.dumps(
            {
                "runs": runs,
                "machine": f"{platform.machine()} {platform.python_version()}",
                "commit": git_commit(),
            }
        )
    )
    for r in runs:
        print(
            f"{r['synchronous']:<6} commit {r['commit_interval_ms']:>4} ms, page "
            f"{r['page_size']:>4} at "
            f"{r['uplinks_per_s']:>4}/s: {r['bytes_per_reading']:>6} B/reading, "
            f"{r['mb_per_day'] / 1000:>6.2f} GB/day ({r['readings']} readings)"
        )


if __name__ == "__main__":
    main()
