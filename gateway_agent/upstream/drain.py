"""One connection's drain of the outbox: a sender keeps the PUBACK window full from two lanes
while the pump reads and encodes rows, publishes live alerts and status, and deletes acked rows."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import TYPE_CHECKING, Any

import aiomqtt

from gateway_agent.errors import StoreError
from gateway_agent.store import OutboxRow
from gateway_agent.upstream.pacing import Nudge
from gateway_agent.upstream.window import Msg, Window, raise_if_lost
from gateway_agent.upstream.wire import encode_single

if TYPE_CHECKING:
    from gateway_agent.upstream.forwarder import Forwarder

# Acked rows wait at most this long for an ingest commit to carry their delete.
DELETE_EVERY_S = 2.0
URGENT_EVERY_S = 1.0  # alerts and events stored by anything that does not call notify_commit

_Read = tuple[int, int, list[Msg]]  # (cursor after, readings read, their messages)


class Drain:
    """Publish outbox rows with up to `inflight` awaiting PUBACK. A sender task keeps the
    window full from two lanes (alerts/events first, then readings) while the pump reads
    the outbox, encodes and deletes acked rows, so store calls never leave the window idle.
    Readings go by seq (= FCnt order per device) from a cursor: one indexed range read per
    round; alerts and events are fetched every round and overtake readings."""

    def __init__(self, fw: Forwarder, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        cfg = fw.cfg
        self.fw, self.client, self.stop = fw, client, stop
        window = cfg.inflight
        self.win = Window(client, window)
        self.acked = self.win.acked
        self.busy: set[int] = set()  # alerts/events queued or published here and not deleted
        self.waiting: list[int] = []  # acked, delete deferred to the next commit: still busy
        self.urgent_lane: collections.deque[Msg] = collections.deque()
        self.reading_lane: collections.deque[Msg] = collections.deque()
        chunk = max(window * 4, 128)  # rows per outbox read; the lane holds one to two reads
        self.defer_rows = window * (cfg.batch_max if cfg.format == "cbor" else 1)
        if cfg.format == "cbor" and cfg.batch_max > 1:
            chunk = -(-max(chunk, 4 * cfg.batch_max) // cfg.batch_max) * cfg.batch_max
        self.chunk = chunk
        self.lane_rows = 0  # readings queued in reading_lane
        self.next_status = time.monotonic() + cfg.status_interval_s
        self.tasks: set[asyncio.Task[None]] = set()
        self.nudge = Nudge()  # sender -> pump: the reading lane runs low
        self.feed = Nudge()  # pump -> sender: something was queued
        self.io: set[asyncio.Future[Any]] = set()  # reads and deletes on the store thread
        # The pump's place, reset on each connection.
        self.last_flush = time.monotonic()
        self.cursor = 0  # seq of the last reading queued on this connection
        self.next_urgent = 0.0
        self.ahead: asyncio.Future[_Read] | None = None  # the next read
        self.deleting: asyncio.Future[None] | None = None  # one delete at a time

    async def run(self) -> None:
        send_task = asyncio.create_task(self._sender(), name="sender")
        send_task.add_done_callback(self.nudge.set)
        try:
            await self._pump(send_task)
        finally:
            send_task.cancel()
            with contextlib.suppress(BaseException):
                await send_task
            await self._settle()
            for t in self.tasks:
                t.cancel()
            self.win.close()
            # Rows acked before the link died must not be resent: delete them whatever happened.
            if self.acked:
                done = list(self.acked)
                self.acked.clear()
                with contextlib.suppress(StoreError):  # else resent later: same ids
                    await self.fw.store_call(self.fw.store.outbox_delete, done)
                self.fw._count_published(len(done))

    # -- the sender: lanes into the window ------------------------------------------------------

    async def _sender(self) -> None:
        win, urgent_lane, reading_lane = self.win, self.urgent_lane, self.reading_lane
        nudge, feed, chunk = self.nudge, self.feed, self.chunk
        limiter = self.fw._limiter
        limited = limiter.rate > 0
        while True:
            if urgent_lane:
                msg = urgent_lane.popleft()
            elif reading_lane:
                msg = reading_lane.popleft()
                self.lane_rows -= len(msg[0])
                if self.lane_rows < chunk:
                    nudge.set()
            else:
                nudge.set()
                await feed.wait(1.0)
                continue
            while win.full():
                await win.wait(1.0)
            if limited:
                await limiter.acquire()
            win.publish(*msg)

    def _queue(self, lane: collections.deque[Msg], msgs: list[Msg]) -> None:
        # Only alerts and events are re-read every round, so only their seqs need to stay
        # busy until deleted; readings are read once, behind a cursor that only moves on
        # (keeping every drained reading's seq here grew ~10 MB over a 1M backlog).
        if lane is self.reading_lane:
            for m in msgs:
                self.lane_rows += len(m[0])
        else:
            for m in msgs:
                self.busy.update(m[0])
        lane.extend(msgs)
        self.feed.set()

    # -- the pump: outbox into the lanes, acked rows out of the outbox --------------------------

    async def _pump(self, send_task: asyncio.Task[None]) -> None:
        fw = self.fw
        fw._urgent_due = True
        while True:
            if send_task.done():
                send_task.result()  # the sender's error (link lost, timeout) ends the drain
                raise aiomqtt.MqttError("sender stopped")
            self._check_window()
            self.tasks.difference_update([t for t in self.tasks if t.done()])
            if self.stop.is_set():
                break
            self._queue_live()
            self._status_due()
            urgent = await self._fetch_urgent()
            if urgent:
                self._queue(self.urgent_lane, fw._messages(urgent))
            got = await self._refill()
            self._start_delete()
            if fw._unreadable:
                await fw._drop_unreadable()
            if got or urgent:
                continue
            await self._idle()
        await self._finish(send_task)

    def _check_window(self) -> None:
        self.win.check()
        rejected = self.win.rejected
        if rejected:  # MQTT 5: a PUBACK that says no still ends the publish
            self.fw.counters.inc("upstream_rejected", len(rejected))
            self.fw._limit.warn("upstream_rejected", key="rejected", reason=rejected[-1])
            rejected.clear()

    def _queue_live(self) -> None:
        live = self.fw._live
        while not live.empty():
            suffix, body = live.get_nowait()
            fmt = self.fw.cfg.format
            self._queue(self.urgent_lane, [([], self.fw.topic(suffix), encode_single(body, fmt))])

    def _status_due(self) -> None:
        if time.monotonic() >= self.next_status:
            self.next_status = time.monotonic() + self.fw.cfg.status_interval_s
            status = self.fw._publish_status(self.client)
            self.tasks.add(asyncio.create_task(status, name="status"))

    async def _fetch_urgent(self) -> list[OutboxRow]:
        """Alerts and events are looked for after a commit, and every second besides: a store
        round trip each drain round was a third of a CBOR drain's time."""
        fw = self.fw
        urgent: list[OutboxRow] = []
        if fw._urgent_due or time.monotonic() >= self.next_urgent:
            fw._urgent_due = False
            self.next_urgent = time.monotonic() + URGENT_EVERY_S
            limit = 64 + len(self.busy)
            urgent = await fw.store_call(fw.store.outbox_fetch_urgent, limit)
            if len(urgent) >= limit:
                fw._urgent_due = True  # more behind these
            urgent = [r for r in urgent if r.seq not in self.busy]
        return urgent

    async def _refill(self) -> int:
        """Refill before the sender runs dry; the next read is already on the store thread
        while this one is encoded here (waiting for reads bound the drain). Returns the
        readings queued this round."""
        chunk = self.chunk
        got = 0
        if self.ahead is None and self.lane_rows < 2 * chunk:
            self.ahead = self._fetch(self.cursor)
        if self.ahead is not None and (self.ahead.done() or self.lane_rows < chunk):
            self.cursor, got, msgs = await self.ahead
            self.ahead = None
            if got:
                if self.lane_rows + got < 2 * chunk:
                    self.ahead = self._fetch(self.cursor)
                self._queue(self.reading_lane, msgs)
        return got

    def _read(self, after: int) -> _Read:
        """On the store thread: the next readings, encoded there too. Encoding here on the
        loop thread starved the read: sqlite3 takes the GIL back row by row, and waits a
        switch interval (5 ms) for it each time while this thread encodes."""
        rows = self.fw.store.outbox_fetch_readings(self.chunk, after)
        if not rows:
            return after, 0, []
        return rows[-1][0], len(rows), self.fw._reading_messages(rows)

    def _fetch(self, after: int) -> asyncio.Future[_Read]:
        f = asyncio.ensure_future(self.fw.store_call(self._read, after))
        self.io.add(f)
        f.add_done_callback(self.io.discard)
        return f

    def _start_delete(self) -> None:
        """Deletes are write transactions (an fsync each under FULL): group them, one at a
        time, beside the reads."""
        if self.acked and (self.deleting is None or self.deleting.done()):
            if self.deleting is not None:
                self.deleting.result()  # an unexpected store error ends the drain
            self.deleting = d = asyncio.ensure_future(self._delete_acked())
            self.io.add(d)
            d.add_done_callback(self.io.discard)

    async def _delete_acked(self) -> None:
        fw, acked = self.fw, self.acked
        if acked:
            done = list(acked)
            try:
                # At most a window of messages' rows wait for the next ingest commit, so a
                # crash resends at most two windows (256 measured no faster for JSON:
                # hil/bench/drain.py; a CBOR batch is many rows to one message).
                await fw.store_call(fw.store.outbox_delete, done, self.defer_rows)
            except StoreError as e:  # disk full: keep them busy, retry on the next round
                fw._limit.warn("outbox_delete_failed", reason=e.reason, rows=len(done))
                return
            del acked[: len(done)]
            fw._count_published(len(done))
            if self.busy:
                self.waiting.extend([s for s in done if s in self.busy])
        if self.waiting and not fw.store.deferred_deletes():
            self.busy.difference_update(self.waiting)  # gone from the table: never fetched again
            self.waiting.clear()

    async def _idle(self) -> None:
        """Nothing read this round: wait for the sender, a PUBACK or a commit."""
        fw, win = self.fw, self.win
        if self.lane_rows >= self.chunk:  # enough queued: wait for the sender
            self.nudge.clear()
            await self.nudge.wait(0.05)
            return
        fw.wake.clear()
        if time.monotonic() - self.last_flush > DELETE_EVERY_S:
            self.last_flush = time.monotonic()
            with contextlib.suppress(StoreError):
                await fw.store_call(fw.store.outbox_delete, [], 0, fw.delete_after_s)
        if win.pending or self.acked or self.reading_lane or self.urgent_lane:
            await win.wait(0.005)
            return
        try:
            await asyncio.wait_for(fw.wake.wait(), timeout=1.0)
        except TimeoutError:
            pass
        raise_if_lost(self.client)  # idle: notice a dead link now, not at the next publish

    async def _finish(self, send_task: asyncio.Task[None]) -> None:
        """Stop: nothing new goes out; wait (bounded) for in-flight PUBACKs; unacked rows stay
        in the outbox."""
        send_task.cancel()
        deadline = time.monotonic() + 2.0
        while self.win.pending and time.monotonic() < deadline:
            await self.win.wait(0.01)
        await self._settle()
        await self._delete_acked()
        with contextlib.suppress(StoreError):
            await self.fw.store_call(self.fw.store.outbox_delete, [])

    async def _settle(self) -> None:
        """Wait for the store calls in flight (a failed one has said so already)."""
        for f in list(self.io):
            with contextlib.suppress(BaseException):
                await f
        self.io.clear()
