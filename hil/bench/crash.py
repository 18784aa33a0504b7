"""Black-box crash loss: the real daemon takes GWMP uplinks at a steady rate and is killed -9 at
random moments; after the last restart its DB (read-only) says which PUSH_ACKed uplinks never
committed. Per kill: uplinks lost, for the old and the new default commit policy in one run.

`python -m hil.bench.crash [--kills 10] [--rate 10] [--configs old,new] [--cycle 1.5:4]` prints
one line per configuration, then one JSON object with the per-kill figures and the commit
measured.
A configuration is `name` (old, new) or `commit_interval_ms:dedup_window_ms[:synchronous]`.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway_agent.config.sections import LorawanConfig, StoreConfig
from hil.bench.meta import git_commit
from tests.agentproc import Agent, Forwarder
from tests.durability_kit import device_table, fleet, frame

OLD_DEFAULT = {"commit_interval_ms": 2000, "dedup_window_ms": 200, "synchronous": "FULL"}


def new_default() -> dict[str, Any]:
    """The shipped defaults of the code being measured."""
    return {
        "commit_interval_ms": StoreConfig().commit_interval_ms,
        "dedup_window_ms": LorawanConfig().dedup_window_ms,
        "synchronous": StoreConfig().synchronous,
    }


def parse_config(spec: str) -> tuple[str, dict[str, Any]]:
    if spec == "old":
        return "old default", dict(OLD_DEFAULT)
    if spec == "new":
        return "new default", new_default()
    parts = spec.split(":")
    cfg = {
        "commit_interval_ms": int(parts[0]),
        "dedup_window_ms": int(parts[1]) if len(parts) > 1 else 200,
        "synchronous": parts[2] if len(parts) > 2 else "FULL",
    }
    return spec, cfg


def committed(db: Path) -> set[tuple[str, int]]:
    """(dev_eui, fcnt) of every reading in the DB, read-only."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return {(r[0], r[1]) for r in con.execute("SELECT dev_eui, fcnt FROM readings")}
    finally:
        con.close()


def crash_run(
    tmp: Path,
    cfg: dict[str, Any],
    rate: float,
    kills: int,
    seed: int,
    cycle_s: tuple[float, float] = (1.5, 4.0),
    n_devices: int = 10,
) -> dict[str, Any]:
    """`kills` cycles of: start, send at `rate` with FCnt increasing per device, SIGKILL at a
    random moment. Then one clean start and stop; per kill, the PUSH_ACKed uplinks of that
    cycle that are not in the DB."""
    rng = random.Random(seed)
    devs = fleet(n_devices)
    agent = Agent(
        tmp,
        None,
        [device_table(d) for d in devs],
        extra={
            "store": {
                "commit_interval_ms": cfg["commit_interval_ms"],
                "synchronous": cfg["synchronous"],
            },
            "lorawan": {"dedup_window_ms": cfg["dedup_window_ms"]},
        },
    )
    acked: list[list[tuple[str, int]]] = []
    n = 0  # uplinks sent over the whole run: device n % D, FCnt n // D
    try:
        for _ in range(kills):
            agent.start()
            fw = Forwarder(agent.udp_port)
            got: list[tuple[str, int]] = []
            t0 = time.monotonic()
            t_kill = t0 + rng.uniform(*cycle_s)
            k = 0
            while True:
                t_next = t0 + k / rate
                if t_next >= t_kill:
                    time.sleep(max(0.0, t_kill - time.monotonic()))
                    break
                time.sleep(max(0.0, t_next - time.monotonic()))
                d = devs[n % n_devices]
                fcnt = n // n_devices
                n += 1
                k += 1
                if fw.push(frame(d, fcnt)) is not None:  # PUSH_ACK: the agent has it
                    got.append((d["eui"], fcnt))
            agent.kill()
            fw.close()
            acked.append(got)
        agent.start()  # recovery at start, then a clean stop: what survived is in the DB
        agent.stop()
        have = committed(agent.state / "agent.db")
    finally:
        agent.kill()
    lost = [sum(1 for u in got if u not in have) for got in acked]
    return {
        **cfg,
        "uplinks_per_s": rate,
        "kills": kills,
        "acked": sum(len(g) for g in acked),
        "acked_per_kill": [len(g) for g in acked],
        "lost_per_kill": lost,
        "lost_max": max(lost),
        "lost_mean": round(sum(lost) / len(lost), 2),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--rate", type=float, default=10.0, help="uplinks/s")
    ap.add_argument("--configs", default="old,new", help="old, new or MS:DEDUP_MS[:SYNC]")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--cycle", default="", help="MIN:MAX seconds from start to kill (default 15-40 uplinks)"
    )
    a = ap.parse_args(argv)
    if a.cycle:
        lo, hi = (float(x) for x in a.cycle.split(":"))
    else:
        lo, hi = max(1.5, 15 / a.rate), max(4.0, 40 / a.rate)
    runs = []
    with tempfile.TemporaryDirectory(prefix="ga-bench-crash-") as d:
        for i, spec in enumerate(a.configs.split(",")):
            name, cfg = parse_config(spec)
            r = crash_run(Path(d) / f"c{i}", cfg, a.rate, a.kills, a.seed + i, (lo, hi))
            runs.append({"config": name, **r})
            print(
                f"{name:<14} commit_interval_ms={r['commit_interval_ms']:<5} "
                f"dedup_window_ms={r['dedup_window_ms']:<4} {r['synchronous']:<6} at "
                f"{r['uplinks_per_s']:g}/s: lost per kill max {r['lost_max']}, mean "
                f"{r['lost_mean']} ({sum(r['lost_per_kill'])} of {r['acked']} PUSH_ACKed "
                f"in {r['kills']} kills: {r['lost_per_kill']})",
                flush=True,
            )
    out = {
        "bench": "crash",
        "runs": runs,
        "machine": f"{platform.machine()} {platform.python_version()}",
        "commit": git_commit(),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
