"""The webhook output against a real aiohttp endpoint: every row POSTed with its HMAC signature,
kind and id; 500s retried with backoff, in order, nothing lost; a 400 refused, dropped and
counted per output in `outbox status` (the real daemon)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.metrics import Counters
from gateway_agent.outputs.webhook import make_sink, signature
from gateway_agent.outputs.worker import OutputDown, OutputWorker, SinkContext
from gateway_agent.store import PRIO_ALERT, PRIO_READING, QueueRow, Store
from gateway_agent.store.thread import StoreThread
from tests.agentproc import Forwarder
from tests.durability_kit import fleet, frame, make_agent, wait_accepted
from tests.outputs.kit import WebhookReceiver, agent_cli, secret_file

CTX = SinkContext("gw-test", Counters())


def hook_cfg(url: str, secret: Path | None) -> OutputConfig:
    return OutputConfig(name="hook", type="webhook", url=url, secret_file=secret)


def up(output: str, i: int) -> tuple[Any, ...]:
    body = json.dumps({"id": f"r{i}", "devEui": "01", "fCnt": i, "note": 'ünï "q"'})
    return (output, PRIO_READING, "up", "01", f"r{i}", body, 1000.0 + i)


def test_signature_is_the_hmac_of_the_exact_body() -> None:
    body = b'{"id":"x","v":1.5}'
    want = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature(b"k", body) == f"sha256={want}"


async def _until(cond: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_signed_headers_then_500s_retried_in_order_nothing_lost(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secret = secret_file(tmp_path / "hook.secret", "hook-secret")
    st = StoreThread()
    store = await st.call(Store, tmp_path / "a.db")
    counters = Counters()
    sink = make_sink(hook_cfg(receiver.url, secret), CTX)
    w = OutputWorker("hook", sink, store, st.call, counters, batch_max=5, backoff=(0.05, 0.2))
    await st.call(store.queue_add, [up("hook", i) for i in range(10)])
    alert = json.dumps({"id": "a1", "devEui": "01", "rule": "hot", "state": "raised"})
    await st.call(store.queue_add, [("hook", PRIO_ALERT, "alert", "01", "a1", alert, 999.0)])
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        await _until(lambda: len(receiver.delivered()) == 11)
        got = receiver.delivered()
        assert [r["id"] for r in got] == ["a1"] + [f"r{i}" for i in range(10)], "alerts first"
        assert all(r["signed_ok"] for r in got), "HMAC-SHA256 of the exact body bytes"
        assert [r["kind"] for r in got] == ["alert"] + ["up"] * 10
        assert {r["content_type"] for r in got} == {"application/json"}
        assert got[1]["msg"]["note"] == 'ünï "q"' and got[1]["msg"]["id"] == "r0"
        # the endpoint fails for a while: rows wait, then all land, in order, once each
        receiver.status = 500
        await st.call(store.queue_add, [up("hook", i) for i in range(10, 30)])
        w.notify_commit()
        await _until(lambda: receiver.answered(500) >= 3)
        assert w.state == "down" and w.last_error == "http 500: receiver says 500"
        assert (await st.call(store.queue_stats))["hook"]["depth"] == 20
        receiver.status = 200
        await _until(lambda: len(receiver.delivered()) == 31)
        ids = [r["id"] for r in receiver.delivered()][11:]
        assert ids == [f"r{i}" for i in range(10, 30)], "retried in order, nothing lost"
        assert (await st.call(store.queue_stats)).get("hook", {}).get("depth", 0) == 0
        assert w.delivered == 31 and w.state == "up"
    finally:
        stop.set()
        await task
        await st.call(store.close)
        st.close()


async def test_no_secret_no_signature_and_an_unreachable_endpoint_is_down(
    receiver: WebhookReceiver, tmp_path: Path
) -> None:
    sink = make_sink(hook_cfg(receiver.url, None), CTX)
    await sink.open()
    row = QueueRow(1, PRIO_READING, "up", "01", "r1", '{"id":"r1"}', 1.0)
    assert (await sink.deliver([row])).done == [1]
    assert receiver.requests[-1]["signature"] is None and receiver.requests[-1]["id"] == "r1"
    await sink.close()
    gone = make_sink(hook_cfg("http://127.0.0.1:9/hook", None), CTX)
    await gone.open()
    try:
        with pytest.raises(OutputDown) as e:
            await gone.deliver([row])
        assert e.value.reason.startswith("cannot connect to 127.0.0.1:9")
    finally:
        await gone.close()


def test_a_400_is_refused_and_counted_per_output_in_outbox_status(tmp_path: Path) -> None:
    """The real daemon, upstream off, one webhook output: the endpoint refuses the readings
    sent while it answers 400 (dropped, counted for that output); later ones land."""
    receiver = WebhookReceiver(secret=b"hook-secret").start()
    secret = secret_file(tmp_path / "hook.secret", "hook-secret")
    devs = fleet(1)
    outputs = [{"name": "hook", "type": "webhook", "url": receiver.url,
                "secret_file": str(secret), "backoff_initial_s": 0.05, "backoff_max_s": 0.2}]  # fmt: skip
    agent = make_agent(tmp_path / "a", None, devs, outputs=outputs)
    fw = Forwarder(agent.udp_port)
    try:
        agent.start()
        receiver.status = 400
        fw.push(frame(devs[0], 0), frame(devs[0], 1))
        assert wait_accepted(agent, 2) == 2
        deadline = time.monotonic() + 15
        while receiver.answered(400) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        receiver.status = 200
        fw.push(frame(devs[0], 2))
        deadline = time.monotonic() + 15
        while not receiver.delivered() and time.monotonic() < deadline:
            time.sleep(0.05)
        got = receiver.delivered()
        assert [r["msg"]["fCnt"] for r in got] == [2] and got[0]["signed_ok"]
        assert receiver.answered(400) == 2, "refused rows are not retried"
        out = agent_cli(agent.config_path, "outbox", "status", "--json")
        assert out.returncode == 0, out.stderr
        lane = json.loads(out.stdout)["outputs"]["hook"]
        assert lane["dropped"] == {"unsent_readings": 2}
        assert lane["depth"] == 0 and lane["state"] == "up" and lane["refused"] == 2
        text = agent_cli(agent.config_path, "outbox", "status").stdout
        assert "hook: 0 waiting, up, 2 dropped" in text
        assert "hook-secret" not in agent.log()
        assert agent.stop() == 0
    finally:
        fw.close()
        agent.kill()
        receiver.close()
