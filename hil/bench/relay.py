"""Relayed frames per second into a local mosquitto (issue #17 must-show 5, target >= 5,000/s).

Three figures:
- `encode`: `Relay.encode` (RadioFrame -> UplinkFrame protobuf), what ingest pays per reception;
- `drain`: the relay's lane worker in-process with a real SQLite store, N frames already in the
  lane, until every one is PUBACKed and deleted (protobuf, and the JSON mapping);
- `daemon`: the real daemon: N frames sent over GWMP UDP while the broker is down, then the
  broker starts; the time until its relay lane is empty (the backlog after an outage), and a
  live run (broker up, frames over UDP) until a subscriber has them all.

`python -m hil.bench.relay [--frames N]` prints figures, then one JSON line with the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import socket
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt
from chirpstack_api import gw
from paho.mqtt.enums import CallbackAPIVersion

from gateway_agent.config import UpstreamConfig
from gateway_agent.config.outputs import RELAY_OUTPUT, RelayConfig
from gateway_agent.lorawan.radio import RadioFrame, RxInfo
from gateway_agent.metrics import Counters
from gateway_agent.relay.service import Relay
from gateway_agent.store import PRIO_READING, Store
from hil.bench.meta import git_commit
from hil.broker import Mosquitto
from hil.lorawan_crypto import build_data_frame

GW = "b827ebfffe6c1a2b"
KEY = bytes(16)


def _phy(i: int) -> bytes:
    return build_data_frame(
        2,
        (0x260B0000 + i % 300).to_bytes(4, "big"),
        i // 300,
        KEY,
        KEY,
        f_port=1,
        payload=bytes([1, 0x67, 0, i % 250]),
    )


def _frames(n: int) -> list[RadioFrame]:
    t0 = time.time()
    out = []
    for i in range(n):
        rx = RxInfo(
            gateway_id=GW,
            rx_mono=0.0,
            rx_wall=t0 + i * 0.001,
            freq_hz=868_100_000 + 200_000 * (i % 3),
            sf=7 + i % 6,
            bw_khz=125,
            code_rate="4/5",
            rssi_dbm=-70 - i % 40,
            snr_db=(i % 40) / 4 - 5,
            channel=i % 8,
            rf_chain=i % 2,
            tmst=(1_000_000 + i * 997) & 0xFFFFFFFF,
            gw_time="2026-12-06T10:12:31.402117Z",
        )
        out.append(RadioFrame(_phy(i), rx))
    return out


def _daemon_like(port: int, as_json: bool, store: Store, call: Any) -> Any:
    cfg = SimpleNamespace(
        relay=RelayConfig(json=as_json, stats_interval_s=3600),
        agent=SimpleNamespace(gateway_id="bench"),
        upstream=UpstreamConfig(port=port, backoff_initial_s=0.1, backoff_max_s=1.0),
    )
    return SimpleNamespace(
        cfg=cfg,
        counters=Counters(),
        store=store,
        st=SimpleNamespace(call=call),
        sources=[],
        send_downlink=lambda tx: False,
        can_downlink=lambda g: False,
    )


async def in_process(tmp: Path, port: int, n: int, as_json: bool) -> dict[str, Any]:
    store = Store(tmp / f"relay-{as_json}.db", "NORMAL")
    pool = ThreadPoolExecutor(1)

    async def call(fn: Any, *a: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *a)

    relay = Relay(_daemon_like(port, as_json, store, call))
    frames = _frames(n)
    t = time.perf_counter()
    rows = []
    for f in frames:
        out = relay.encode(f)
        assert out is not None
        kind, mid, body, heard = out
        rows.append((RELAY_OUTPUT, PRIO_READING, kind, None, mid, body, heard))
    encode_s = time.perf_counter() - t
    for i in range(0, n, 5000):
        store.queue_add(rows[i : i + 5000])
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(relay.worker.run(stop))]
    while relay.link.window is None:  # noqa: ASYNC110 - a bench polls the link state
        await asyncio.sleep(0.005)
    t0 = time.monotonic()
    while relay.worker.delivered < n:
        await asyncio.sleep(0.01)
        if time.monotonic() - t0 > 300:
            break
    dt = time.monotonic() - t0
    stop.set()
    await asyncio.gather(*tasks)
    left = store.queue_stats().get(RELAY_OUTPUT, {}).get("depth", 0)
    store.close()
    pool.shutdown()
    return {
        "json": as_json,
        "frames": n,
        "delivered": relay.worker.delivered,
        "left_in_lane": left,
        "drain_s": round(dt, 3),
        "drain_per_s": round(relay.worker.delivered / dt),
        "encode_us": round(encode_s / n * 1e6, 1),
        "bytes_per_frame": round(sum(len(r[5]) for r in rows) / n, 1),
    }


class Counter:
    """Counts `event/up` messages in a thread of its own (paho)."""

    def __init__(self, port: int) -> None:
        self.n = 0
        self.arrivals: dict[bytes, float] | None = None  # phy -> arrival (latency runs)
        self.first = 0.0
        self.last = 0.0
        self.ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")

        def on_connect(c: Any, *_: Any) -> None:
            c.subscribe("eu868/gateway/+/event/up", 1)
            self.ready.set()

        self.c.on_connect = on_connect
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.ready.wait(10)

    def _on(self, c: Any, u: Any, m: Any) -> None:
        self.n += 1
        self.last = time.monotonic()
        if self.n == 1:
            self.first = self.last
        if self.arrivals is not None:
            up = gw.UplinkFrame()
            up.ParseFromString(m.payload)
            self.arrivals[bytes(up.phy_payload)] = self.last

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _rxpk(phy: bytes, i: int) -> dict[str, Any]:
    return {
        "tmst": (i * 997) & 0xFFFFFFFF,
        "chan": i % 8,
        "rfch": 0,
        "freq": 868.1,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "rssi": -80,
        "lsnr": 7.5,
        "size": len(phy),
        "data": base64.b64encode(phy).decode(),
    }


def _send(port: int, phys: list[bytes], lane: Any, max_ahead: int) -> None:
    """PUSH_DATA with 20 rxpk each; at most `max_ahead` frames ahead of `lane()` (what the
    agent has taken), so the bounded frame queue never sheds."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    eui = bytes.fromhex(GW)
    for i in range(0, len(phys), 20):
        body = json.dumps({"rxpk": [_rxpk(p, i + k) for k, p in enumerate(phys[i : i + 20])]})
        s.sendto(b"\x02\x00\x01\x00" + eui + body.encode(), ("127.0.0.1", port))
        while i - lane() > max_ahead:
            time.sleep(0.002)
    s.close()


def daemon_runs(tmp: Path, n: int) -> dict[str, Any]:
    from tests.agentproc import Agent  # the test harness's daemon runner

    broker = Mosquitto(workdir=tmp / "mosq-d")
    broker.start()
    agent = Agent(
        tmp / "agent",
        broker.port,
        [],
        extra={"relay": {"topic_prefix": "eu868", "stats_interval_s": 3600}},
    )
    out: dict[str, Any] = {"frames": n}
    try:
        agent.start()

        def received() -> int:
            return int(agent.counter("frames_received"))

        # Live: broker up, frames over UDP, until the subscriber has them all.
        sub = Counter(broker.port)
        phys = [_phy(i) for i in range(n)]
        t0 = time.monotonic()
        _send(agent.udp_port, phys, received, 4000)
        deadline = time.monotonic() + 300
        while received() < n and time.monotonic() < deadline:
            time.sleep(0.01)
        ingested = time.monotonic()
        while sub.n < n and time.monotonic() < deadline:
            time.sleep(0.01)
        out["live_per_s"] = round(sub.n / (sub.last - t0)) if sub.n else 0
        out["live_ingest_per_s"] = round(n / (ingested - t0))
        # How long after the last frame was taken in the last one reached the subscriber: the
        # relay keeping up with the ingest (the live rate is then the sender's and ingest's).
        out["live_relay_lag_ms"] = round(1000 * (sub.last - ingested)) if sub.n else None
        out["live_received"] = sub.n
        sub.close()
        # Backlog: broker down while N more frames are heard, then up.
        broker.stop()
        base = received()
        _send(agent.udp_port, [_phy(n + i) for i in range(n)], lambda: received() - base, 4000)
        while agent.ask("outbox")["outputs"].get("relay", {}).get("depth", 0) < n:
            time.sleep(0.1)
        broker.start()
        sub = Counter(broker.port)
        t0 = time.monotonic()
        while sub.n < n and time.monotonic() - t0 < 300:
            time.sleep(0.02)
        # From the first frame relayed (the reconnect's backoff is not the relay's rate).
        out["backlog_per_s"] = round((sub.n - 1) / (sub.last - sub.first)) if sub.n > 1 else 0
        out["backlog_reconnect_s"] = round(sub.first - t0, 2) if sub.n else None
        out["backlog_received"] = sub.n
        # Latency: single frames 20 ms apart, PUSH_DATA sent -> event/up at a subscriber.
        sub.arrivals = {}
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent: dict[bytes, float] = {}
        for i in range(200):
            phy = _phy(3 * n + i)
            body = json.dumps({"rxpk": [_rxpk(phy, i)]}).encode()
            sent[phy] = time.monotonic()
            s.sendto(b"\x02\x00\x02\x00" + bytes.fromhex(GW) + body, ("127.0.0.1", agent.udp_port))
            time.sleep(0.02)
        s.close()
        time.sleep(1.0)
        lat = sorted(1000 * (sub.arrivals[p] - t) for p, t in sent.items() if p in sub.arrivals)
        out["latency_ms"] = {
            "frames": len(lat),
            "median": round(lat[len(lat) // 2], 1) if lat else None,
            "p99": round(lat[int(len(lat) * 0.99) - 1], 1) if lat else None,
            "max": round(lat[-1], 1) if lat else None,
        }
        sub.close()
    finally:
        agent.stop()
        broker.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=50_000)
    ap.add_argument("--daemon-frames", type=int, default=20_000)
    ap.add_argument("--no-daemon", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as d:
        tmp = Path(d)
        broker = Mosquitto(workdir=tmp / "mosq")
        broker.start()
        try:
            runs = [
                asyncio.run(in_process(tmp, broker.port, args.frames, j)) for j in (False, True)
            ]
        finally:
            broker.stop()
        daemon = None if args.no_daemon else daemon_runs(tmp, args.daemon_frames)
    for r in runs:
        print(
            f"in-process drain ({'json' if r['json'] else 'protobuf'}): {r['frames']} frames in"
            f" {r['drain_s']} s = {r['drain_per_s']:,}/s to PUBACK; encode {r['encode_us']} us/frame,"
            f" {r['bytes_per_frame']} B/frame"
        )
    if daemon:
        print(
            f"real daemon: live over GWMP UDP {daemon['live_per_s']:,}/s (ingest"
            f" {daemon['live_ingest_per_s']:,}/s, relay done {daemon['live_relay_lag_ms']} ms"
            " after the ingest)"
            f" ({daemon['live_received']}/{daemon['frames']});"
            f" backlog after an outage {daemon['backlog_per_s']:,}/s"
            f" ({daemon['backlog_received']}/{daemon['frames']});"
            f" latency UDP -> subscriber {daemon['latency_ms']}"
        )
    print(
        json.dumps(
            {
                "bench": "relay",
                "commit": git_commit(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "in_process": runs,
                "daemon": daemon,
            }
        )
    )


if __name__ == "__main__":
    main()
