"""The output worker's contract with any sink: rows in (priority, seq) order, deleted only once
delivered, refused rows dropped and counted, a down destination retried with backoff, one
output never waiting for another. The sinks here are scripted destinations (the real ones are
tested against real servers in this folder); the store is a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from gateway_agent.metrics import Counters
from gateway_agent.outputs.worker import Delivery, OutputDown, OutputWorker
from gateway_agent.store import PRIO_ALERT, PRIO_READING, QueueRow, Store
from gateway_agent.store.thread import StoreThread


class Scripted:
    """A destination that is down while `down` is set, refuses ids in `refuse`, and takes at
    most `take` rows per delivery (the rest are offered again)."""

    def __init__(self) -> None:
        self.down = False
        self.refuse: set[str] = set()
        self.take: int | None = None
        self.got: list[str] = []
        self.opens = 0

    async def open(self) -> None:
        self.opens += 1
        if self.down:
            raise OutputDown("connection refused")

    async def deliver(self, rows: Sequence[QueueRow]) -> Delivery:
        if self.down:
            raise OutputDown("connection reset")
        d = Delivery(refused_reason="http 400")
        for r in rows[: self.take] if self.take else rows:
            if r.msg_id in self.refuse:
                d.refused.append(r.seq)
            else:
                self.got.append(r.msg_id)
                d.done.append(r.seq)
        return d

    async def close(self) -> None:
        pass


def _rows(output: str, n: int, start: int = 0) -> list[tuple]:
    return [
        (output, PRIO_READING, "up", "01", f"r{i}", "{}", float(i)) for i in range(start, start + n)
    ]


async def _until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_order_refusals_and_a_down_output_never_holds_back_another(tmp_path: Path) -> None:
    st = StoreThread()
    store = await st.call(Store, tmp_path / "a.db")
    counters = Counters()
    a, b = Scripted(), Scripted()
    b.down = True
    wa = OutputWorker("a", a, store, st.call, counters, batch_max=7, backoff=(0.01, 0.05))
    wb = OutputWorker("b", b, store, st.call, counters, batch_max=7, backoff=(0.01, 0.05))
    await st.call(store.queue_add, _rows("a", 30) + _rows("b", 30))
    await st.call(store.queue_add, [("a", PRIO_ALERT, "alert", "01", "alert1", "{}", 99.0)])
    a.refuse = {"r5"}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in (wa, wb)]
    try:
        await _until(lambda: len(a.got) == 30)
        assert a.got[0] == "alert1", "alerts first"
        assert a.got[1:] == [f"r{i}" for i in range(30) if i != 5], "in order, r5 refused"
        assert wb.state == "down" and b.got == []
        assert (await st.call(store.queue_stats))["a"]["dropped"] == {"unsent_readings": 1}
        assert (await st.call(store.queue_stats))["b"]["depth"] == 30, "b's rows wait"
        # b comes back, and takes only 3 rows per delivery at first: partial deliveries are
        # retried after a pause, in order, nothing lost or repeated
        b.take = 3
        b.down = False
        wb.retry_now()
        await _until(lambda: len(b.got) >= 6)
        b.take = None
        await _until(lambda: len(b.got) == 30)
        assert b.got == [f"r{i}" for i in range(30)]
        assert (await st.call(store.queue_stats)).get("b", {"depth": 0})["depth"] == 0
        # new rows after a commit wake the worker
        await st.call(store.queue_add, _rows("a", 3, start=100))
        wa.notify_commit()
        await _until(lambda: a.got[-1] == "r102")
        assert wa.status()["state"] == "up" and wa.status()["delivered"] == 33
        assert counters.get("output_errors", output="b") >= 1
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await st.call(store.close)
        st.close()


async def test_a_sink_bug_is_contained(tmp_path: Path) -> None:
    class Broken(Scripted):
        async def deliver(self, rows: Sequence[QueueRow]) -> Delivery:
            raise KeyError("bug")

    st = StoreThread()
    store = await st.call(Store, tmp_path / "a.db")
    counters = Counters()
    s = Broken()
    w = OutputWorker("x", s, store, st.call, counters, backoff=(0.01, 0.02))
    await st.call(store.queue_add, _rows("x", 2))
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        # it keeps trying (opened again and again) and says why it is down
        await _until(lambda: s.opens >= 3 and w.state == "down")
        assert w.last_error == "internal: KeyError"
        assert (await st.call(store.queue_stats))["x"]["depth"] == 2, "nothing lost"
    finally:
        stop.set()
        await task
        await st.call(store.close)
        st.close()
