"""Web console response times (issue #19 must-show 4): the overview and a device page with its
30-day chart, with 10,000 devices and 1 M stored readings, served by the real aiohttp app over a
real Store, the store thread and the daemon's own control commands. Prints one JSON object.

    .venv/bin/python -m hil.bench.web [--devices 10000] [--readings 1000000] [--runs 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway_agent.config import load_config
from gateway_agent.daemon.commands import register
from gateway_agent.daemon.control_server import ControlServer
from gateway_agent.ingest import Ingest
from gateway_agent.metrics import Counters
from gateway_agent.model import Device
from gateway_agent.store import Batch, Store
from gateway_agent.store.thread import StoreThread
from gateway_agent.upstream.forwarder import Forwarder
from gateway_agent.web import load_web_settings, read_credentials
from gateway_agent.web.app import serve_web
from hil.bench.meta import git_commit

CHART_EVERY_S = 600  # the charted device reports every 10 minutes: 4,320 readings in 30 days
DAY = 86_400.0


class Host:
    """The daemon's parts the console and the control commands use, built for real."""

    def __init__(self, state: Path) -> None:
        self.cfg = load_config(
            {
                "agent": {"gateway_id": "bench-gw", "state_dir": str(state)},
                "upstream": {"host": "127.0.0.1", "port": 1},
                "store": {"max_db_mb": 4096},
            }
        )
        self.counters = Counters()
        self.started, self.started_mono = time.time(), time.monotonic()
        self.stop = asyncio.Event()
        self.st = StoreThread()
        self.sources: list[Any] = []
        self.frames: asyncio.Queue[Any] = asyncio.Queue(maxsize=10)

    async def open(self) -> None:
        self.store = await self.st.call(Store, self.cfg.agent.db_path, "NORMAL")
        self.forwarder = Forwarder(
            self.cfg.upstream, "bench-gw", self.store, self.st.call, self.counters
        )
        self.ingest = Ingest(
            self.cfg, self.store, self.st.call, self.counters, lambda tx: False, lambda: None
        )
        self.ctl = ControlServer(self.cfg.agent.control_path)
        register(self.ctl, self)

    def status_figures(self) -> dict[str, Any]:
        return {"version": "bench", "uptimeS": 0, "accepted": 0, "published": 0, "devices": 0}

    def healthy(self) -> bool:
        return True

    async def reload(self) -> dict[str, Any]:
        return {}


def fill(store: Store, n_devices: int, n_readings: int, now: float) -> tuple[str, int]:
    """Devices and readings rows as the ingest's Stage writes them (no outbox rows)."""
    devs = [
        Device(
            dev_eui=(0x70B3D57E00000000 + i).to_bytes(8, "big"),
            name=f"room {i}",
            device_class="co2",
        )
        for i in range(n_devices)
    ]
    store.upsert_devices(devs, "file")
    chart = devs[0].dev_eui.hex()
    rows: list[tuple[Any, ...]] = []
    seen: dict[str, tuple[float, float | None, float | None, str]] = {}
    n_chart = min(int(30 * DAY / CHART_EVERY_S), n_readings)
    per_other = (n_readings - n_chart) // max(n_devices - 1, 1)
    fcnt = 0

    def add(eui: str, t: float, v: float) -> None:
        nonlocal fcnt
        fcnt += 1
        m = json.dumps({"co2_ppm": v, "temperature_c": 20.5, "battery_v": 3.6})
        rows.append(
            (f"{eui}-00000000-{fcnt}", eui, fcnt, 1, t, 1, b"\x01", m, "{}", None, -97.0, 7.5, 1)
        )
        seen[eui] = (t, -97.0, 7.5, m)
        if len(rows) >= 20_000:
            flush()

    def flush() -> None:
        store.commit_batch(Batch(readings=list(rows), seen=dict(seen)))
        rows.clear()
        seen.clear()

    for k in range(n_chart):
        add(chart, now - 30 * DAY + k * CHART_EVERY_S, 400 + (k % 144) * 5)
    extra = (n_readings - n_chart) - per_other * max(n_devices - 1, 1)  # exactly n_readings
    for i, d in enumerate(devs[1:]):
        eui = d.dev_eui.hex()
        n = per_other + (1 if i < extra else 0)
        for k in range(n):
            add(eui, now - 30 * DAY + (k + 0.5) * (30 * DAY / n), 450 + k % 300)
    flush()
    return chart, fcnt


async def timed(s: aiohttp.ClientSession, url: str, runs: int) -> dict[str, float]:
    async with s.get(url) as r:  # warm-up (and a check that it works)
        assert r.status == 200, (url, r.status, await r.text())
        size = len(await r.read())
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        async with s.get(url) as r:
            await r.read()
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    return {
        "median_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[max(0, int(len(ms) * 0.95) - 1)], 1),
        "max_ms": round(ms[-1], 1),
        "bytes": size,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        host = Host(Path(tmp))
        await host.open()
        t = time.perf_counter()
        chart, stored = await host.st.call(
            fill, host.store, args.devices, args.readings, time.time()
        )
        fill_s = time.perf_counter() - t
        await host.st.call(host.ingest.load)
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        settings = load_web_settings({"listen": "127.0.0.1:0"})
        server = asyncio.create_task(
            serve_web(
                host,
                settings,
                read_credentials(settings),
                host.ctl.handlers,
                host.stop,
                port.set_result,
            )
        )
        base = f"http://127.0.0.1:{await port}"
        async with aiohttp.ClientSession() as s:
            overview = await timed(s, base + "/", args.runs)
            api_status = await timed(s, base + "/api/status", args.runs)
            device = await timed(s, f"{base}/devices/{chart}?range=30d", args.runs)
            devices = await timed(s, base + "/devices?q=room%209999", args.runs)
        host.stop.set()
        await server
        await host.st.call(host.store.close)
        host.st.close()
    return {
        "bench": "web",
        "commit": git_commit(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "devices": args.devices,
        "readings": stored,
        "chart_device_readings_30d": min(int(30 * DAY / CHART_EVERY_S), args.readings),
        "fill_s": round(fill_s, 1),
        "overview": overview,
        "api_status": api_status,
        "device_30d_chart": device,
        "devices_search": devices,
        "targets_ms": {"overview": 200, "device_30d_chart": 500},
        "met": overview["median_ms"] < 200 and device["median_ms"] < 500,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--readings", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=20)
    print(json.dumps(asyncio.run(main(p.parse_args()))))
