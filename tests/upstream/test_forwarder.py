"""Forwarder against a real mosquitto: delete only after PUBACK, order, outage, CBOR batches."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cbor2
import pytest

from gateway_agent.config import UpstreamConfig
from gateway_agent.metrics import Counters
from gateway_agent.store import PRIO_ALERT, PRIO_READING, Store
from gateway_agent.upstream.forwarder import Backoff, Forwarder
from gateway_agent.upstream.wire import LABELS, decode_payload
from hil.broker import Mosquitto
from tests.agentproc import Subscriber

EUI = "70b3d57ed0000001"


def rows(n: int, start: int = 0, prio: int = PRIO_READING) -> list[tuple[Any, ...]]:
    kind = "up" if prio == PRIO_READING else "alert"
    return [
        (
            prio,
            kind,
            EUI,
            f"devices/{EUI}/{kind}",
            f"gw:{EUI}:{i}",
            json.dumps({"id": f"gw:{EUI}:{i}", "fCnt": i, "data": "AQI="}),
            time.time(),
            0.0,
        )
        for i in range(start, start + n)
    ]


class Harness:
    def __init__(self, tmp: Path, port: int, **cfg: Any) -> None:
        self.store = Store(tmp / "a.db", "NORMAL")
        self.pool = ThreadPoolExecutor(1)
        self.cfg = UpstreamConfig(
            host="127.0.0.1",
            port=port,
            topic_prefix="ga",
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            **cfg,
        )

    async def call(self, fn: Any, *a: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *a)

    def forwarder(self) -> Forwarder:
        return Forwarder(self.cfg, "gw", self.store, self.call, Counters())


async def run_until(fw: Forwarder, cond: Any, timeout_s: float = 20.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(fw.run(stop))
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_delivers_in_order_and_deletes_after_puback(
    tmp_path: Path, broker: Mosquitto
) -> None:
    h = Harness(tmp_path, broker.port)
    h.store.add_outbox(rows(300) + rows(3, 1000, PRIO_ALERT))
    sub = Subscriber(broker.port, "ga/#")
    fw = h.forwarder()
    await run_until(fw, lambda: len(sub.json("/up")) >= 300 and len(sub.json("/alert")) >= 3)
    ups = sub.json("/up")
    assert [m["fCnt"] for m in ups] == list(range(300)), "per-device FCnt order"
    assert h.store.outbox_stats()["depth"] == 0
    # Alerts overtake routine readings: they were published before the readings queued ahead of them.
    order = [t for t, _ in sub.messages if t.endswith(("/up", "/alert"))]
    assert order.index(f"ga/gw/devices/{EUI}/alert") < order.index(f"ga/gw/devices/{EUI}/up")
    status: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (not status or status[-1]["state"] != "offline"):
        await asyncio.sleep(0.05)  # the subscriber gets the last status after run() returned
        status = [json.loads(p) for t, p in sub.messages if t == "ga/gw/status"]
    assert status[0]["state"] == "online" and status[-1]["state"] == "offline"
    sub.close()


async def test_broker_down_keeps_rows_then_delivers(tmp_path: Path, broker: Mosquitto) -> None:
    h = Harness(tmp_path, broker.port)
    broker.stop()
    h.store.add_outbox(rows(50))
    fw = h.forwarder()
    await run_until(fw, lambda: False, timeout_s=1.5)
    assert h.store.outbox_stats()["depth"] == 50, "nothing leaves the outbox without a PUBACK"
    assert fw.last_error
    broker.start()
    sub = Subscriber(broker.port, "ga/#")
    await run_until(fw, lambda: h.store.outbox_stats()["depth"] == 0)
    assert sorted(m["fCnt"] for m in sub.wait_for(50)) == list(range(50))
    sub.close()


async def test_cbor_batches(tmp_path: Path, broker: Mosquitto) -> None:
    h = Harness(tmp_path, broker.port, format="cbor", batch_max=100)
    h.store.add_outbox(rows(250))
    sub = Subscriber(broker.port, "ga/#")
    await run_until(h.forwarder(), lambda: h.store.outbox_stats()["depth"] == 0)
    deadline = time.monotonic() + 5
    while (
        time.monotonic() < deadline and sum(1 for t, _ in sub.messages if t == "ga/gw/batch/up") < 3
    ):
        await asyncio.sleep(0.05)
    raw = [cbor2.loads(p) for t, p in sub.messages if t == "ga/gw/batch/up"]
    assert [len(b) for b in raw] == [100, 100, 50]
    assert raw[0][0][LABELS["data"]] == b"\x01\x02", "CBOR carries the payload as bytes"
    batches = [decode_payload(p, "cbor") for t, p in sub.messages if t == "ga/gw/batch/up"]
    flat = [m["fCnt"] for b in batches for m in b]
    assert flat == list(range(250))
    assert batches[1][0] == json.loads(rows(1, 100)[0][5]), "the JSON structure, restored"
    sub.close()


def test_backoff_full_jitter_capped() -> None:
    import random

    b = Backoff(1.0, 60.0, random.Random(1))
    delays = [b.next_delay() for _ in range(12)]
    assert all(0 <= d <= 60 for d in delays)
    assert max(delays[:1]) <= 1.0 and max(delays[6:]) <= 60
    b.reset()
    assert b.next_delay() <= 1.0


async def test_backoff_keeps_growing_when_the_broker_drops_after_connack(tmp_path: Path) -> None:
    """A broker that accepts (CONNACK rc=0) and closes at once must not reset the backoff."""
    connects = 0

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal connects
        connects += 1
        await r.read(1024)  # CONNECT
        w.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
        await w.drain()
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    h = Harness(tmp_path, port)
    h.cfg = UpstreamConfig(
        host="127.0.0.1", port=port, topic_prefix="ga", backoff_initial_s=0.05, backoff_max_s=0.4
    )
    h.store.add_outbox(rows(5))
    fw = h.forwarder()
    await run_until(fw, lambda: False, timeout_s=3.0)
    server.close()
    assert connects >= 3
    assert fw._backoff.attempt >= connects, "no reset on connections that die at once"
    assert h.store.outbox_stats()["depth"] == 5, "nothing deleted without PUBACK"


async def test_mqtt5_and_rate_ceiling(tmp_path: Path, broker: Mosquitto) -> None:
    h = Harness(tmp_path, broker.port, mqtt_version="5", rate_limit_per_s=40.0)
    h.store.add_outbox(rows(60))
    sub = Subscriber(broker.port, "ga/#")
    t0 = time.monotonic()
    await run_until(h.forwarder(), lambda: h.store.outbox_stats()["depth"] == 0)
    took = time.monotonic() - t0
    assert h.store.outbox_stats()["depth"] == 0
    assert took >= 0.9, f"60 messages at 40/s (bucket of 40) cannot take {took:.2f}s"
    assert [m["fCnt"] for m in sub.wait_for(60)] == list(range(60))
    sub.close()


def test_cbor_batch_is_compact_and_round_trips() -> None:
    from gateway_agent.upstream.wire import encode_batch, encode_single
    from hil.bench.drain import _bodies

    bodies = [r[5] for r in _bodies(250)]
    batch = encode_batch(bodies)
    back = decode_payload(batch, "cbor")
    assert back == [json.loads(b) for b in bodies], "lossless: the JSON messages come back"
    raw = cbor2.loads(batch)[0]
    assert raw[LABELS["data"]] == base64.b64decode(json.loads(bodies[0])["data"])
    assert LABELS["id"] not in raw, "only the id's session part travels; the decoder rebuilds the id"
    single = decode_payload(encode_single(bodies[3], "cbor"), "cbor")
    assert single == json.loads(bodies[3])
    per = len(batch) / len(bodies)
    assert per <= 0.25 * sum(len(b) for b in bodies) / len(bodies), per


async def test_idle_forwarder_notices_a_dead_link(tmp_path: Path, broker: Mosquitto) -> None:
    h = Harness(tmp_path, broker.port)
    fw = h.forwarder()
    stop = asyncio.Event()
    task = asyncio.create_task(fw.run(stop))
    deadline = time.monotonic() + 10
    while not fw.connected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert fw.connected
    broker.stop()  # nothing to publish: only the idle check can notice
    deadline = time.monotonic() + 5
    while fw.connected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not fw.connected, "status must not say 'connected' while the broker is gone"
    assert fw.last_error
    stop.set()
    await asyncio.wait_for(task, 10)


def test_cbor_batches_respect_the_byte_cap(tmp_path: Path) -> None:
    """Float-heavy readings are larger in CBOR than the size estimate: batches split to fit."""
    h = Harness(tmp_path, 1, format="cbor", batch_max=100, batch_max_bytes=2000)
    body = json.dumps({"fCnt": 1, "object": {f"v{i}": 0.1 + i for i in range(40)}})
    h.store.add_outbox([(*r[:5], body, *r[6:]) for r in rows(60)])
    msgs = h.forwarder()._messages(h.store.outbox_fetch(100))
    assert all(len(p) <= 2000 for _, _, p in msgs), [len(p) for _, _, p in msgs]
    assert len(msgs) > 1
    assert [s for seqs, _, _ in msgs for s in seqs] == [r.seq for r in h.store.outbox_fetch(100)]
    assert decode_payload(msgs[0][2], "cbor")[0] == json.loads(body)


@pytest.mark.parametrize("fmt", ["cbor", "json"])
async def test_a_damaged_stored_item_is_dropped_and_counted(
    tmp_path: Path, broker: Mosquitto, fmt: str
) -> None:
    """A stored CBOR item that no longer reads (a damaged row) must not stop the drain at it:
    the rest goes out, the row leaves the outbox counted as dropped (reason `unreadable`) and
    the next `data_dropped` event reports it."""
    from gateway_agent.upstream.wire import cbor_item

    h = Harness(tmp_path, broker.port, format=fmt, batch_max=10 if fmt == "cbor" else 1)
    good = [(*r[:5], cbor_item(json.loads(r[5])), *r[6:]) for r in rows(30)]
    damaged = (*good[12][:4], "gw:damaged", b"\x01\x09\x00" + bytes(5), *good[12][6:])
    h.store.add_outbox(good[:12] + [damaged] + good[12:])
    sub = Subscriber(broker.port, "ga/#")
    fw = h.forwarder()
    await run_until(fw, lambda: h.store.outbox_stats()["depth"] == 0)
    assert h.store.outbox_stats()["depth"] == 0
    deadline = time.monotonic() + 5
    fcnts: list[int] = []
    while time.monotonic() < deadline and len(fcnts) < 30:
        await asyncio.sleep(0.05)
        payloads = [p for t, p in sub.messages if t.endswith("/up")]
        fcnts = [m["fCnt"] for p in payloads for m in _as_list(decode_payload(p, fmt))]
    assert fcnts == list(range(30)), "every readable reading, in order"
    assert fw.counters.snapshot().get("dropped{kind=unreadable}") == 1
    await run_until(fw, lambda: any(t.endswith("/events") for t, _ in sub.messages))
    events = [decode_payload(p, fmt) for t, p in sub.messages if t.endswith("/events")]
    assert any(e.get("reasons") == ["unreadable"] and e["unsent_readings"] == 1 for e in events)
    sub.close()


@pytest.mark.parametrize("fmt", ["cbor", "json"])
async def test_a_damaged_alert_row_is_set_aside_not_a_stall(
    tmp_path: Path, broker: Mosquitto, fmt: str
) -> None:
    """An alert row whose stored body no longer reads (text that is not JSON under CBOR; a
    damaged item under JSON) must not stop every later alert and reading: it is dropped,
    counted as an unsent alert (reason `unreadable`), and the rest goes out."""
    h = Harness(tmp_path, broker.port, format=fmt, batch_max=10 if fmt == "cbor" else 1)
    alerts = rows(3, prio=PRIO_ALERT)
    bad_body: str | bytes = "{not json" if fmt == "cbor" else b"\x01\x09\x00" + bytes(5)
    damaged = (*alerts[1][:5], bad_body, *alerts[1][6:])
    h.store.add_outbox([alerts[0], damaged, alerts[2], *rows(5, start=10)])
    sub = Subscriber(broker.port, "ga/#")
    fw = h.forwarder()
    await run_until(fw, lambda: h.store.outbox_stats()["depth"] == 0)
    assert h.store.outbox_stats()["depth"] == 0, "not stuck behind the damaged row"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(sub.messages) < 7:
        await asyncio.sleep(0.05)
    got = [decode_payload(p, fmt) for t, p in sub.messages if t.endswith("/alert")]
    assert [a["fCnt"] for a in got] == [0, 2]
    up = [p for t, p in sub.messages if t.endswith("/up")]
    assert sorted(m["fCnt"] for p in up for m in _as_list(decode_payload(p, fmt))) == [
        10,
        11,
        12,
        13,
        14,
    ]
    assert fw.counters.snapshot().get("dropped{kind=unreadable}") == 1
    await run_until(fw, lambda: any(t.endswith("/events") for t, _ in sub.messages))
    events = [decode_payload(p, fmt) for t, p in sub.messages if t.endswith("/events")]
    assert any(e.get("unsent_alerts") == 1 and "unsent_readings" not in e for e in events)
    sub.close()


def _as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else [x]
