"""Drain rate of an outbox backlog to a local mosquitto: JSON per reading, CBOR batched, and a
plain paho-mqtt QoS 1 loop as the floor; bytes on the wire per reading; live-alert latency.

`python -m hil.bench.drain [--readings N] [--batch B]` prints JSON, then one human line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from gateway_agent.config import UpstreamConfig
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.metrics import Counters
from gateway_agent.model import Reading, reading_id
from gateway_agent.store import PRIO_ALERT, PRIO_READING, Store
from gateway_agent.upstream.forwarder import Forwarder
from gateway_agent.upstream.wire import decode_payload, uplink_body
from hil.bench.meta import git_commit
from hil.broker import Mosquitto

GW = "bench-gw"
PREFIX = "ga"


def _bodies(n: int, fmt: str = "json", devices: int = 50) -> list[tuple[Any, ...]]:
    """Realistic outbox rows: LPP temperature/humidity readings built by the real formatter, in
    the form ingest stores for `fmt` (JSON text, or a CBOR item made once at ingest).
    Values, payloads, RF figures and times differ from reading to reading; a reading's time is
    its first reception's (as ingest stamps it)."""
    t0 = time.time()
    rows = []
    for i in range(n):
        eui = (0x70B3D57ED0000000 + i % devices).to_bytes(8, "big")
        fcnt = i // devices
        temp10 = 150 + (i * 7) % 120  # 15.0 .. 26.9 C in LPP's 0.1 C steps
        hum2 = 60 + (i * 3) % 80  # 30 .. 69.5 % in LPP's 0.5 % steps
        rx = RxInfo(
            gateway_id="b827ebfffe6c1a2b",
            rx_mono=0.0,
            rx_wall=t0 + i * 0.01,
            rssi_dbm=-70 - i % 30,
            snr_db=(i % 40) / 4 - 2,
            freq_hz=868_100_000,
            sf=7,
            bw_khz=125,
            code_rate="4/5",
            channel=0,
            rf_chain=0,
            tmst=(1_000_000 + i * 1000) & 0xFFFFFFFF,
        )
        r = Reading(
            id=reading_id(eui, "8f14e45f", fcnt),
            dev_eui=eui,
            dev_addr=bytes.fromhex("260b3c5a"),
            fcnt=fcnt,
            f_port=1,
            payload=bytes([1, 0x67, *temp10.to_bytes(2, "big"), 2, 0x68, hum2]),
            time=t0 + i * 0.01,
            time_valid=True,
            confirmed=False,
            codec="cayenne-lpp",
            measurements={"temperature_c": temp10 / 10, "humidity_pct": hum2 / 2},
            object={"temperature_1": temp10 / 10, "humidity_2": hum2 / 2},
            rx=(rx,),
        )
        body = uplink_body(r, GW, "room", ("school-017",), fmt)
        e = eui.hex()
        rows.append((PRIO_READING, "up", e, f"devices/{e}/up", r.id, body, r.time, 0.0))
    return rows


def _wire_bytes(topic: str, payload: bytes) -> int:
    """PUBLISH QoS 1 on the wire: fixed header (1 + length bytes) + topic + packet id + payload."""
    rem = 2 + len(topic.encode()) + 2 + len(payload)
    lb = 1 if rem < 128 else 2 if rem < 16384 else 3 if rem < 2_097_152 else 4
    return 1 + lb + rem


class AlertWatch:
    def __init__(self, port: int) -> None:
        self.seen: dict[str, float] = {}
        self.ready = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-alerts")
        self.c.on_connect = lambda c, u, f, rc, p: (
            c.subscribe(f"{PREFIX}/+/devices/+/alert", 1),
            self.ready.set(),
        )
        self.c.on_message = lambda c, u, m: self.seen.setdefault(
            decode_payload(m.payload, "json" if m.payload[:1] == b"{" else "cbor")["id"],
            time.monotonic(),
        )
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.ready.wait(10)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


async def drain(
    tmp: Path, port: int, rows: list[tuple[Any, ...]], fmt: str, batch: int, watch: AlertWatch
) -> dict[str, Any]:
    store = Store(tmp / f"drain-{fmt}.db", "NORMAL")
    store.add_outbox(rows)
    pool = ThreadPoolExecutor(1)

    async def call(fn: Any, *a: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *a)

    cfg = UpstreamConfig(
        port=port, topic_prefix=PREFIX, format=fmt, batch_max=batch, batch_max_bytes=256 * 1024
    )
    fw = Forwarder(cfg, GW, store, call, Counters())
    wire = 0
    orig = fw._reading_messages

    def counting(rs: list[Any]) -> list[tuple[list[int], str, bytes]]:
        nonlocal wire
        out = orig(rs)
        wire += sum(_wire_bytes(t, p) for s, t, p in out)
        return out

    fw._reading_messages = counting  # type: ignore[method-assign]
    stop = asyncio.Event()
    t0 = time.monotonic()
    task = asyncio.create_task(fw.run(stop))
    latencies = []
    next_alert = t0 + 0.3
    n_alert = 0
    while True:
        await asyncio.sleep(0.02)
        # Acked and deleted so far, by the forwarder's own count: a count(*) over the outbox
        # every 20 ms would queue on the store thread in front of the drain's reads.
        left = len(rows) + n_alert - fw.published
        if left <= 0:
            break
        if time.monotonic() >= next_alert and left > len(rows) // 10:
            aid = f"alert-{fmt}-{n_alert}"
            n_alert += 1
            body = json.dumps({"id": aid, "devEui": "70b3d57ed0000001", "state": "raised"})
            eui = "70b3d57ed0000001"
            sent = time.monotonic()
            await call(
                store.add_outbox,
                [(PRIO_ALERT, "alert", eui, f"devices/{eui}/alert", aid, body, time.time(), 0.0)],
            )
            fw.notify_commit()
            latencies.append((aid, sent))
            next_alert = time.monotonic() + 0.5
    elapsed = time.monotonic() - t0
    stop.set()
    await asyncio.wait_for(task, 10)
    await asyncio.sleep(0.5)
    lat = [watch.seen[a] - s for a, s in latencies if a in watch.seen]
    left = store.outbox_depth()
    store.close()
    pool.shutdown()
    return {
        "readings_per_s": round(len(rows) / elapsed),
        "elapsed_s": round(elapsed, 2),
        "wire_bytes_per_reading": round(wire / len(rows), 1),
        "left_in_outbox": left,
        "alerts_sent_during_drain": len(latencies),
        "alerts_seen": len(lat),
        "alert_latency_max_s": round(max(lat), 3) if lat else None,
    }


def paho_loop(port: int, rows: list[tuple[Any, ...]], inflight: int) -> dict[str, Any]:
    """The floor: a plain paho QoS 1 publish loop with the same in-flight window."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho")
    c.max_inflight_messages_set(inflight)
    c.max_queued_messages_set(0)
    slots = threading.Semaphore(inflight)  # paho's own queue is O(n) per PUBACK: keep it short
    c.on_publish = lambda c, u, mid, rc, p: slots.release()
    c.connect("127.0.0.1", port)
    c.loop_start()
    t0 = time.monotonic()
    wire = 0
    for r in rows:
        topic = f"{PREFIX}/{GW}/{r[3]}"
        payload = r[5].encode()  # JSON rows
        slots.acquire()
        c.publish(topic, payload, qos=1)
        wire += _wire_bytes(topic, payload)
    for _ in range(inflight):
        slots.acquire()
    elapsed = time.monotonic() - t0
    c.loop_stop()
    c.disconnect()
    return {
        "readings_per_s": round(len(rows) / elapsed),
        "elapsed_s": round(elapsed, 2),
        "wire_bytes_per_reading": round(wire / len(rows), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=250)
    a = ap.parse_args()
    rows = _bodies(a.readings)
    t0 = time.process_time()
    cbor_rows = _bodies(a.readings, "cbor")
    t_cbor = time.process_time() - t0
    t0 = time.process_time()
    _bodies(a.readings, "json")
    t_json = time.process_time() - t0
    with tempfile.TemporaryDirectory() as d, Mosquitto(workdir=Path(d) / "mq") as broker:
        tmp = Path(d)
        watch = AlertWatch(broker.port)
        out: dict[str, Any] = {
            "paho_loop": paho_loop(broker.port, rows, UpstreamConfig().inflight),
            "json": asyncio.run(drain(tmp, broker.port, rows, "json", 1, watch)),
            "cbor_batched": asyncio.run(drain(tmp, broker.port, cbor_rows, "cbor", a.batch, watch)),
        }
        watch.close()
    j, c, p = out["json"], out["cbor_batched"], out["paho_loop"]
    out["json_vs_paho"] = round(j["readings_per_s"] / p["readings_per_s"], 2)
    out["cbor_bytes_vs_json"] = round(c["wire_bytes_per_reading"] / j["wire_bytes_per_reading"], 3)
    # What a CBOR item made at ingest costs over JSON text (building the message included).
    out["ingest_cbor_item_extra_us"] = round((t_cbor - t_json) / a.readings * 1e6, 1)
    out["readings"] = a.readings
    out["batch"] = a.batch
    out["machine"] = f"{platform.machine()} {platform.python_version()}"
    out["commit"] = git_commit()
    print(json.dumps(out))
    print(
        f"drain {a.readings}: paho {p['readings_per_s']}/s, json {j['readings_per_s']}/s "
        f"({out['json_vs_paho']}x), cbor x{a.batch} {c['readings_per_s']}/s; bytes/reading "
        f"json {j['wire_bytes_per_reading']} cbor {c['wire_bytes_per_reading']} "
        f"({out['cbor_bytes_vs_json']:.0%}); live alert max "
        f"{j['alert_latency_max_s']}s json / {c['alert_latency_max_s']}s cbor; "
        f"a CBOR item costs ingest {out['ingest_cbor_item_extra_us']} us more than JSON text"
    )


if __name__ == "__main__":
    main()
