"""Peak RSS of the real daemon with 10,000 devices and a 1,000,000-reading outbox backlog: idle,
during live ingest with the broker down, and while the backlog drains to a local mosquitto.

`python -m hil.bench.memory [--devices N] [--backlog N] [--ingest-s S] [--drain-s S] [--rate R]`
prints one JSON object, then one human line. VmRSS/VmHWM come from /proc/<pid>/status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway_agent.control import request
from gateway_agent.errors import ControlError
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Reading, reading_id
from gateway_agent.store import PRIO_READING, Batch, Store
from gateway_agent.upstream.formats import dumps, uplink_message
from hil.bench.meta import git_commit
from hil.broker import Mosquitto
from hil.daemonproc import REPO, DaemonProcess
from hil.fleet import FleetDevice
from hil.forwarder import PacketForwarder, RxMeta
from hil.lorawan_crypto import build_data_frame
from hil.ports import free_port, free_udp_port
from hil.runner import Run
from hil.scenario import FleetGroup, GatewaySpec, Scenario

TARGET_MIB = 80.0
GW_EUI = bytes.fromhex("b827ebfffe0a0001")
CLASSES = ("co2", "legionella", "bin", "gully")
INTERVAL_S = 1800.0


def _status_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
            out[k] = int(v.split()[0])
    return out


def _smaps_rollup_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines()[1:]:
        k, _, v = line.partition(":")
        if v.strip().endswith("kB"):
            out[k.strip()] = int(v.split()[0])
    return out


def _top_mappings_kb(pid: int, n: int = 8) -> list[tuple[str, int]]:
    """Largest Rss contributors by mapping name ([heap], anonymous, libpython, _sqlite3...)."""
    sizes: dict[str, int] = {}
    name = ""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if parts and "-" in parts[0] and len(parts[0]) > 8 and ":" not in parts[0]:
            name = Path(parts[5]).name if len(parts) >= 6 else "[anon]"
        elif line.startswith("Rss:"):
            sizes[name] = sizes.get(name, 0) + int(parts[1])
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:n]


class Sampler:
    """VmRSS every `period_s`, attributed to the phase that is current when sampled."""

    def __init__(self, pid: int, period_s: float = 0.2) -> None:
        self.pid, self.period_s = pid, period_s
        self.phase = "start"
        self.peak_kb: dict[str, int] = {}
        self.hwm_kb = 0
        self.samples = 0

    def sample(self) -> None:
        st = _status_kb(self.pid)
        if "VmRSS" not in st:
            return
        self.samples += 1
        self.peak_kb[self.phase] = max(self.peak_kb.get(self.phase, 0), st["VmRSS"])
        self.hwm_kb = max(self.hwm_kb, st.get("VmHWM", 0))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.period_s)


def _scenario(n: int, seed: int) -> Scenario:
    per = n // len(CLASSES)
    groups = tuple(
        FleetGroup(c, per + (1 if i < n - per * len(CLASSES) else 0), interval_s=INTERVAL_S)
        for i, c in enumerate(CLASSES)
    )
    # A day or two of outage for 10k devices does not fit the default 512 MB cap: raised so
    # the backlog is kept (what an operator sizing for it would do) rather than shed.
    store = {"commit_interval_ms": 50, "max_db_mb": 4096}
    return Scenario(
        name="memory",
        duration_s=86400.0,
        accel=1.0,
        seed=seed,
        fleet=groups,
        gateways=(GatewaySpec(GW_EUI),),
        agent_config={"store": store},
    )


def prefill(db_path: Path, fleet: list[FleetDevice], gateway_id: str, backlog: int) -> float:
    """Write `backlog` real-looking readings + outbox rows (the real formatter, the sensor models'
    own frames and values) as a broker outage of backlog/devices readings per device would."""
    store = Store(db_path, synchronous="NORMAL")
    per_dev = -(-backlog // len(fleet))
    now = time.time()
    t0 = now - per_dev * INTERVAL_S
    written = 0
    rng = random.Random(7)
    t_start = time.monotonic()
    batch = Batch()
    for k in range(per_dev):
        for d in fleet:
            if written >= backlog:
                break
            t = t0 + k * INTERVAL_S + rng.uniform(0, INTERVAL_S * 0.9)
            s = d.model.sample(t - t0)
            rx = RxInfo(
                gateway_id=GW_EUI.hex(),
                rx_mono=0.0,
                rx_wall=t,
                freq_hz=868_100_000,
                sf=7,
                bw_khz=125,
                code_rate="4/5",
                rssi_dbm=-60 - rng.randrange(60),
                snr_db=round(rng.uniform(-5, 10), 1),
                channel=0,
                rf_chain=0,
                tmst=rng.randrange(1 << 32),
            )
            assert d.stack.dev_addr is not None
            r = Reading(
                id=reading_id(d.dev_eui, "8f14e45f", k),
                dev_eui=d.dev_eui,
                dev_addr=d.stack.dev_addr,
                fcnt=k,
                f_port=s.f_port,
                payload=s.payload,
                time=t,
                codec=d.model.codec,
                measurements=dict(s.truth),
                object=dict(s.truth),
                rx=(rx,),
            )
            eui = d.dev_eui.hex()
            m_json = dumps(dict(r.measurements))
            batch.readings.append(
                (
                    r.id,
                    eui,
                    k,
                    s.f_port,
                    t,
                    1,
                    s.payload,
                    m_json,
                    "{}",
                    None,
                    rx.rssi_dbm,
                    rx.snr_db,
                    1,
                )
            )
            body = dumps(uplink_message(r, gateway_id, d.name, list(d.tags) + ["hil"]))
            batch.outbox.append((PRIO_READING, "up", eui, f"devices/{eui}/up", r.id, body, t, 0.0))
            written += 1
            if len(batch.outbox) >= 20_000:
                store.commit_batch(batch)
                batch = Batch()
    if batch.outbox:
        store.commit_batch(batch)
    store.checkpoint()
    store.close()
    return time.monotonic() - t_start


def _outbox_depth(db_path: Path) -> int | None:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None


def _counters(ctl: Path) -> dict[str, int]:
    try:
        return dict(request(ctl, "counters", timeout_s=5))
    except (ControlError, TypeError, ValueError):
        return {}


async def _feed(
    fleet: list[FleetDevice],
    fwd: PacketForwarder,
    rate: float,
    until: float,
    fcnt0: int,
    fed: list[int] | None = None,
) -> int:
    """Live uplinks, round-robin over the fleet (each device's next FCnt), `rate` per second."""
    sent = 0
    t_next = time.monotonic()
    i = 0
    fcnt = {d.dev_eui: fcnt0 for d in fleet}
    while time.monotonic() < until:
        pks = []
        for _ in range(4):  # up to 4 rxpk per PUSH_DATA, like a busy lora_pkt_fwd
            d = fleet[i % len(fleet)]
            i += 1
            s = d.model.sample(fcnt[d.dev_eui] * INTERVAL_S)
            assert d.stack.dev_addr and d.stack.nwk_s_key and d.stack.app_s_key
            phy = build_data_frame(
                2,
                d.stack.dev_addr,
                fcnt[d.dev_eui],
                d.stack.nwk_s_key,
                d.stack.app_s_key,
                f_port=s.f_port,
                payload=s.payload,
            )
            fcnt[d.dev_eui] += 1
            pks.append(fwd.rxpk(phy, RxMeta(868_100_000, 7, 125, -80, 7.5)))
        fwd.push(pks)
        sent += len(pks)
        if fed is not None:
            fed[0] = sent
        t_next += len(pks) / rate
        delay = t_next - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif sent % 256 < 4:
            await asyncio.sleep(0)
    return sent


async def run_memory(
    n_devices: int, backlog: int, ingest_s: float, drain_s: float, rate: float, idle_s: float
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="ga-bench-memory-"))
    run = Run(_scenario(n_devices, seed=80), work)
    fleet = run.fleet
    broker_port = free_port()
    udp_port = free_udp_port()
    cfg = run.write_agent_files(broker_port, udp_port)
    db_path = work / "state" / "agent.db"
    prefill_s = prefill(db_path, fleet, run.gateway_id, backlog)
    db_mb = db_path.stat().st_size / 2**20
    depth0 = _outbox_depth(db_path)
    daemon = DaemonProcess(
        cfg, work / "state" / "control.sock", db_path, work / "agent.log", cwd=REPO
    )
    broker = Mosquitto(port=broker_port, workdir=work / "mosq")
    out: dict[str, Any] = {}
    t_start = time.monotonic()
    daemon.start(timeout_s=120)
    start_s = time.monotonic() - t_start
    assert daemon.proc is not None
    pid = daemon.proc.pid
    sampler = Sampler(pid)
    task = asyncio.create_task(sampler.run())
    fwd = PacketForwarder(GW_EUI, ("127.0.0.1", udp_port), on_downlink=None)
    smaps: dict[str, dict[str, int]] = {}
    try:
        await fwd.start()
        sampler.phase = "idle"
        await asyncio.sleep(idle_s)
        smaps["idle"] = _smaps_rollup_kb(pid)
        sampler.phase = "ingest"
        c0 = _counters(daemon.control)
        t0 = time.monotonic()
        per_dev = -(-backlog // n_devices)
        sent = await _feed(fleet, fwd, rate, t0 + ingest_s, per_dev)
        await asyncio.sleep(1.0)
        c1 = _counters(daemon.control)
        ingest_wall = time.monotonic() - t0
        smaps["ingest"] = _smaps_rollup_kb(pid)
        top_ingest = _top_mappings_kb(pid)
        sampler.phase = "drain"
        broker.start()
        t1 = time.monotonic()
        fed = [0]
        # Each device's next FCnt (the models step their physics up to the sample time, so a
        # far-future FCnt would make every live sample crawl through months of simulated time).
        next_fcnt = per_dev + -(-sent // n_devices)
        feed = asyncio.create_task(_feed(fleet, fwd, rate, t1 + drain_s, next_fcnt, fed))
        drained_at = None
        while time.monotonic() < t1 + drain_s:
            await asyncio.sleep(1.0)
            # In a thread: a control request to a daemon busy draining can take seconds, and
            # blocking this loop would starve the live feed.
            c = await asyncio.to_thread(_counters, daemon.control)
            if c.get("upstream_published", 0) >= (depth0 or 0) + sent:
                drained_at = time.monotonic() - t1
                break
        feed.cancel()
        live_during_drain = fed[0]
        c2 = _counters(daemon.control)
        drain_wall = time.monotonic() - t1
        smaps["drain"] = _smaps_rollup_kb(pid)
        top_drain = _top_mappings_kb(pid)
        sampler.sample()
        depth_end = _outbox_depth(db_path)
    finally:
        task.cancel()
        await fwd.close()
        daemon.sample()
        daemon.stop()
        broker.stop()
    published = c2.get("upstream_published", 0) - c1.get("upstream_published", 0)
    peak = {k: round(v / 1024, 1) for k, v in sampler.peak_kb.items()}
    overall = max(peak.values()) if peak else 0.0
    out = {
        "bench": "memory",
        "devices": n_devices,
        "backlog_readings": backlog,
        "prefill_s": round(prefill_s, 1),
        "db_mib": round(db_mb, 1),
        "outbox_depth_start": depth0,
        "daemon_start_s": round(start_s, 2),
        "live_rate_per_s": rate,
        "ingest_s": round(ingest_wall, 1),
        "ingest_sent": sent,
        "ingest_accepted": c1.get("readings_accepted", 0) - c0.get("readings_accepted", 0),
        "drain_s": round(drain_wall, 1),
        "drained_all_in_s": None if drained_at is None else round(drained_at, 1),
        "drain_published": published,
        "drain_rate_per_s": round(published / drain_wall, 1) if drain_wall else None,
        "live_during_drain": live_during_drain,
        "outbox_depth_end": depth_end,
        "peak_rss_mib": peak,
        "peak_rss_mib_overall": overall,
        "vm_hwm_mib": round(sampler.hwm_kb / 1024, 1),
        "vm_hwm_mb": round(sampler.hwm_kb * 1024 / 1e6, 1),  # decimal, for an "80 MB" target
        "target_mib": TARGET_MIB,
        "within_target": round(sampler.hwm_kb / 1024, 1) <= TARGET_MIB,
        "smaps_rollup_kb": {
            k: {f: v.get(f) for f in ("Rss", "Anonymous", "Pss_Anon", "Pss_File", "Shared_Clean")}
            for k, v in smaps.items()
        },
        "top_mappings_kb": {"ingest": top_ingest, "drain": top_drain},
        "rss_samples": sampler.samples,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {os.cpu_count()} CPU",
        "commit": git_commit(),
    }
    shutil.rmtree(work, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil.bench.memory", description=__doc__)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--backlog", type=int, default=1_000_000)
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--ingest-s", type=float, default=60.0)
    ap.add_argument("--drain-s", type=float, default=300.0, help="at most; stops when drained")
    ap.add_argument("--rate", type=float, default=200.0, help="live uplinks/s (ingest and drain)")
    a = ap.parse_args(argv)
    r = asyncio.run(run_memory(a.devices, a.backlog, a.ingest_s, a.drain_s, a.rate, a.idle_s))
    print(json.dumps(r, indent=2))
    p = r["peak_rss_mib"]
    print(
        f"daemon peak RSS with {r['devices']:,} devices and a {r['backlog_readings']:,}-reading"
        f" backlog: idle {p.get('idle', 0):.1f} MiB, ingest {p.get('ingest', 0):.1f} MiB,"
        f" drain {p.get('drain', 0):.1f} MiB; VmHWM {r['vm_hwm_mib']:.1f} MiB"
        f" ({r['vm_hwm_mb']:.1f} MB) vs target"
        f" {TARGET_MIB:.0f} MiB ({'OK' if r['within_target'] else 'OVER'});"
        f" drain {r['drain_rate_per_s']}/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
