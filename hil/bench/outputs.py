"""Ingest rate of the real daemon with three outputs ([upstream] MQTT to a real mosquitto, an
influxdb output to a private influxd, a webhook output to a real aiohttp endpoint) beside the
same daemon with [upstream] alone (issue #20 must-show 4, target >= 0.8x), and with the three
configured but their destinations down (what staging the extra rows costs), alternating runs;
then the drain rate of each output: the three destinations down while N uplinks are committed,
then all up at once, rows/s from a full lane to an empty one. Loopback only, bounded.

    .venv/bin/python -m hil.bench.outputs [--uplinks 20000] [--devices 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

from gateway_agent.control import request
from hil.bench.ingest import _thread_cpu, send_paced
from hil.bench.meta import git_commit
from hil.bench.web_ingest import WINDOW, setup
from hil.broker import Mosquitto
from hil.daemonproc import DaemonProcess
from hil.ports import free_port, free_udp_port
from tests.outputs.kit import Influxd, secret_file

DB = "agent"
SECRET = "bench-webhook-secret"


def _receiver(port: int, status: Any, count: Any) -> None:
    """The webhook endpoint, in its own process (the sender must not share a GIL with it):
    answers `status.value`, counts 2xx answers in `count`."""
    from aiohttp import web

    async def hook(req: web.Request) -> web.Response:
        await req.read()
        s = int(status.value)
        if 200 <= s < 300:
            with count.get_lock():
                count.value += 1
        return web.Response(status=s)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


class Endpoint:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.status = ctx.Value("i", 200)
        self.count = ctx.Value("q", 0)
        self.proc = ctx.Process(target=_receiver, args=(self.port, self.status, self.count))
        self.proc.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("webhook endpoint did not listen")

    def close(self) -> None:
        self.proc.kill()
        self.proc.join(10)


def config(tmp: Path, udp: int, broker: int, influx: Influxd | None, hook: Endpoint | None) -> Path:
    doc: dict[str, Any] = {
        "agent": {"gateway_id": "bench", "state_dir": str(tmp / "state"),
                  "devices_file": str(tmp / "devices.toml"), "log_level": "WARNING",
                  "frame_queue": 200000},
        "sources": [{"type": "gwmp", "listen": f"127.0.0.1:{udp}"}],
        "upstream": {"host": "127.0.0.1", "port": broker, "topic_prefix": "ga",
                     "backoff_initial_s": 0.1, "backoff_max_s": 0.5},
        "lorawan": {"dedup_window_ms": 200},
    }  # fmt: skip
    fast = {"backoff_initial_s": 0.1, "backoff_max_s": 0.5}
    if influx is not None and hook is not None:
        secret = secret_file(tmp / "hook.secret", SECRET)
        doc["outputs"] = [
            {"name": "influx", "type": "influxdb", "url": influx.url, "database": DB,
             "batch_max": 1000, **fast},
            {"name": "hook", "type": "webhook", "url": hook.url, "secret_file": str(secret),
             **fast},
        ]  # fmt: skip
    cfg = tmp / "agent.toml"
    cfg.write_text(tomli_w.dumps(doc))
    cfg.chmod(0o600)
    return cfg


def send(dgrams: list[bytes], udp: int) -> None:
    """PUSH_ACK-paced as hil/bench/ingest.py: at most WINDOW datagrams in flight."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    send_paced(sock, dgrams, udp, WINDOW)
    sock.close()


def accepted(control: Path) -> int:
    return int(request(control, "counters").get("readings_accepted", 0))


def wait_accepted(control: Path, n: int, timeout_s: float = 180) -> int:
    done, deadline = 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = accepted(control)
        if done >= n:
            break
        time.sleep(0.1 if done < 0.95 * n else 0.01)
    return done


class Rig:
    """A temp dir, mosquitto, and (three outputs) influxd and the webhook endpoint."""

    def __init__(self, three: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="ga-bench-outputs-"))
        self.broker = Mosquitto(workdir=self.tmp / "mosquitto")
        self.influx = Influxd(self.tmp / "influxd") if three else None
        self.hook = Endpoint() if three else None
        self.udp = free_udp_port()
        self.daemon: DaemonProcess | None = None

    def make_daemon(self) -> DaemonProcess:
        cfg = config(self.tmp, self.udp, self.broker.port, self.influx, self.hook)
        state = self.tmp / "state"
        self.daemon = DaemonProcess(cfg, state / "control.sock", state / "agent.db",
                                    self.tmp / "agent.log")  # fmt: skip
        return self.daemon

    def close(self) -> None:
        if self.daemon is not None:
            self.daemon.stop(timeout_s=10)
        if self.hook is not None:
            self.hook.close()
        if self.influx is not None:
            self.influx.stop()
        self.broker.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def ingest_run(n: int, devices: int, per_dgram: int, arm: str) -> dict[str, Any]:
    """`arm`: "one" ([upstream] alone), "three" (all three up and draining while the uplinks
    commit) or "staged" (three configured, influxd and the endpoint down: the cost of staging
    the extra rows alone, without draining them)."""
    rig = Rig(arm != "one")
    try:
        _, dgrams = setup(rig.tmp, n, devices, per_dgram)
        rig.broker.start()
        if rig.influx is not None and arm == "three":
            rig.influx.start()
            rig.influx.create_db(DB)
        if rig.hook is not None and arm == "staged":
            rig.hook.status.value = 503
        daemon = rig.make_daemon()
        daemon.start(timeout_s=30)
        assert daemon.proc is not None
        cpu0 = _thread_cpu(daemon.proc.pid)
        t0 = time.perf_counter()
        send(dgrams, rig.udp)
        done = wait_accepted(daemon.control, n)
        elapsed = time.perf_counter() - t0
        cpu1 = _thread_cpu(daemon.proc.pid)
    finally:
        rig.close()
    return {
        "arm": arm,
        "committed": done,
        "seconds": round(elapsed, 3),
        "uplinks_per_s": round(done / elapsed),
        "daemon_cpu_us_per_uplink": {
            k: round((cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / max(done, 1) * 1e6, 1)
            for k in sorted(cpu1)
        },
    }


def depths(control: Path) -> dict[str, int]:
    st = request(control, "outbox", timeout_s=30)
    out = {"mqtt": int(st["depth"])}
    for name, lane in st.get("outputs", {}).items():
        if name == "upstream":  # [upstream] beside [[outputs]] reads the shared rows
            out["mqtt"] += int(lane.get("depth", 0))
        else:
            out[name] = int(lane.get("depth", 0))
    return out


def drain_run(n: int, devices: int, per_dgram: int) -> dict[str, Any]:
    """All three destinations down while `n` uplinks commit; then all up at once: each lane's
    rows / seconds from its destination's return to its lane's last row gone."""
    rig = Rig(True)
    assert rig.influx is not None and rig.hook is not None
    try:
        _, dgrams = setup(rig.tmp, n, devices, per_dgram)
        rig.hook.status.value = 503
        daemon = rig.make_daemon()
        daemon.start(timeout_s=30)
        send(dgrams, rig.udp)
        done = wait_accepted(daemon.control, n)
        full = depths(daemon.control)
        back: dict[str, float] = {}
        rig.broker.start()
        back["mqtt"] = time.perf_counter()
        rig.hook.status.value = 200
        back["hook"] = time.perf_counter()
        rig.influx.start()
        rig.influx.create_db(DB)
        back["influx"] = time.perf_counter()
        empty: dict[str, float] = {}
        deadline = time.monotonic() + 600
        while len(empty) < len(back) and time.monotonic() < deadline:
            now = time.perf_counter()
            for name, d in depths(daemon.control).items():
                if d == 0 and name not in empty:
                    empty[name] = now
            time.sleep(0.2)
    finally:
        rig.close()
    return {
        "committed": done,
        "rows": full,
        "drain_rows_per_s": {
            k: round(full[k] / (empty[k] - back[k])) if k in empty else None for k in back
        },
        "drain_seconds": {k: round(empty[k] - back[k], 2) if k in empty else None for k in back},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--uplinks", type=int, default=20_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-datagram", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--drain-uplinks", type=int, default=None, help="default: --uplinks")
    a = ap.parse_args(argv)
    arms = ("one", "three", "staged")
    runs = []
    for i in range(a.runs * len(arms)):  # alternating: one, three, staged, one, ...
        r = ingest_run(a.uplinks, a.devices, a.per_datagram, arms[i % len(arms)])
        cpu = r["daemon_cpu_us_per_uplink"]
        print(
            f"{r['arm']:6} {r['uplinks_per_s']} uplinks/s ({r['committed']}/{a.uplinks} in "
            f"{r['seconds']} s), daemon CPU us/uplink {cpu}",
            flush=True,
        )
        runs.append(r)
    med = {
        arm: statistics.median(r["uplinks_per_s"] for r in runs if r["arm"] == arm) for arm in arms
    }
    one, three = med["one"], med["three"]
    ratio = round(three / one, 3)
    staged = round(med["staged"] / one, 3)
    print(
        f"median one output {one} uplinks/s, three outputs {three} uplinks/s, ratio {ratio}"
        f" (three staged but not draining: {med['staged']} uplinks/s, ratio {staged})"
    )
    drain = drain_run(a.drain_uplinks or a.uplinks, a.devices, a.per_datagram)
    print(f"drain from full lanes {drain['rows']}: rows/s {drain['drain_rows_per_s']}")
    out = {
        "bench": "outputs",
        "commit": git_commit(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "uplinks": a.uplinks,
        "devices": a.devices,
        "outputs": "[upstream] mqtt + influxdb (batch_max 1000) + webhook (signed, one per row)",
        "runs": runs,
        "one_output_uplinks_per_s_median": one,
        "three_outputs_uplinks_per_s_median": three,
        "ratio": ratio,
        "target_met": ratio >= 0.8,
        "staged_not_draining_uplinks_per_s_median": med["staged"],
        "staged_ratio": staged,
        "drain": drain,
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
