"""The ingest's run loop: frames -> dedup window -> `Uplinks.handle_uplink` -> one group commit.

A frame counts as accepted only once its batch is committed (invariant 1); post-commit actions
(ACKs, join-accepts, rule actions) run only after the commit. `Ingest` wires the collaborators.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from gateway_agent.config import Config
from gateway_agent.errors import BadInput, DiskFullError, StoreError
from gateway_agent.ingest.downlinks import Downlinks
from gateway_agent.ingest.joins import Joins
from gateway_agent.ingest.mac import Mac
from gateway_agent.ingest.nonces import JoinNonces
from gateway_agent.ingest.passive import FetchedSession, Passive
from gateway_agent.ingest.reading import build_reading
from gateway_agent.ingest.rules_runner import RuleRunner
from gateway_agent.ingest.sessions import SessionCache
from gateway_agent.ingest.stage import PostCommit, Stage, alert_publication
from gateway_agent.ingest.uplink import Uplinks
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.lorawan import adr as lw_adr
from gateway_agent.lorawan import region as lw_region
from gateway_agent.lorawan.dedup import DedupWindow, FrameGroup
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame, RxInfo
from gateway_agent.lorawan.session import DeviceSession, UplinkAccepted
from gateway_agent.metrics import Counters
from gateway_agent.model import Alert, Device, Reading
from gateway_agent.store import Batch, Store

log = logging.getLogger("gateway_agent.ingest")  # one logger name for the ingest's log lines
StoreCall = Callable[..., Awaitable[Any]]


class Ingest:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        store_call: StoreCall,
        counters: Counters,
        send_downlink: Callable[[DownlinkTx], bool],
        on_commit: Callable[[], None],
        run_actions: Callable[[Alert, Device], None] | None = None,
        can_downlink: Callable[[str], bool] = lambda gateway_id: False,
    ) -> None:
        self.store = store
        self.store_call = store_call
        self.counters = counters
        self.on_commit = on_commit
        self.run_actions = run_actions
        # Forwarder.publish_live: alerts go out live when the disk refuses the commit (issue 5)
        self.live_publish: Callable[[str, str], Any] | None = None
        # [relay]: a frame -> (kind, msg_id, body, heard) for the relay's lane (set by the daemon
        # from gateway_agent.relay, imported only when configured); None: no relay.
        self.relay_encode: Callable[[RadioFrame], tuple[str, str, bytes, float] | None] | None = (
            None
        )
        self.limiter = RateLimitedLog(log, window_s=10.0)
        self.stage = Stage(cfg, counters)
        self.downlinks = Downlinks(
            cfg.lorawan, store, self.stage, counters, self.limiter, send_downlink, can_downlink
        )
        # Early release: a frame every active receiver has reported is not held (crash window).
        self.dedup = DedupWindow(cfg.lorawan.dedup_window_ms / 1000.0, early_release=True)
        self._receivers_known = False
        self.cache = SessionCache()
        self.nonces = JoinNonces()
        self.passive = Passive(self.cache, self.stage, self.nonces)
        self.rules = RuleRunner(cfg, self.cache, self.stage, counters, self.limiter)
        self.mac = Mac(cfg, self.downlinks, counters, self.limiter)
        self.joins = Joins(
            cfg,
            self.nonces,
            self.cache,
            self.stage,
            self.mac,
            self.downlinks,
            counters,
            self.limiter,
            self._open_batches,
            self.passive,
        )
        self.uplinks = Uplinks(
            cfg,
            self.cache,
            self.joins,
            self.mac,
            self.rules,
            self.stage,
            self.downlinks,
            counters,
            self.limiter,
            self.passive,
        )
        self._cfg = cfg
        self.heartbeat = time.monotonic()
        self.accepted = 0
        self.refused = 0
        self._flush_lock = asyncio.Lock()
        self._inflight: tuple[Batch, asyncio.Future[None]] | None = None
        self._last_commit = float("-inf")  # loop clock when the last commit began

    @property
    def cfg(self) -> Config:
        return self._cfg

    @cfg.setter
    def cfg(self, new: Config) -> None:
        """A reloaded config (SIGHUP) reaches every collaborator at once."""
        self._cfg = new
        for part in (self.stage, self.rules, self.mac, self.joins, self.uplinks):
            part.cfg = new
        self.downlinks.lorawan = new.lorawan

    # The names callers and tests know, over the collaborators that own them.

    @property
    def region(self) -> lw_region.Region:
        return lw_region.REGIONS[self.cfg.lorawan.region]

    @property
    def devices(self) -> dict[bytes, Device]:
        return self.cache.devices

    @property
    def sessions(self) -> dict[bytes, list[DeviceSession]]:
        return self.cache.by_addr

    @property
    def addr_of(self) -> dict[bytes, bytes]:
        return self.cache.addr_of

    @property
    def by_join(self) -> dict[tuple[bytes, bytes], Device]:
        return self.cache.by_join

    @property
    def rule_states(self) -> dict[tuple[str, str], Any]:
        return self.rules.states

    @property
    def adr_states(self) -> dict[bytes, lw_adr.AdrState]:
        return self.mac.adr_states

    @property
    def batch(self) -> Batch:
        return self.stage.batch

    @property
    def post(self) -> PostCommit:
        return self.stage.post

    @property
    def batch_started(self) -> float | None:
        return self.stage.started

    def load(self) -> None:
        """(Re)load devices, sessions, join nonces and rule state from the store. Call from the
        store thread: the event loop never touches SQLite."""
        rows = self.store.devices()
        self.nonces.load(rows, self.store.all_dev_nonces())
        self.cache.load(rows)
        self.rules.load(self.store.rule_states())
        if not self._receivers_known:  # at start: the gateways heard before the restart
            self.dedup.know(self.store.gateway_stats(), time.monotonic())
            self._receivers_known = True

    def handle_group(self, group: FrameGroup) -> None:
        self.uplinks.handle_uplink(group)

    @property  # passive mode: the session fetch's hooks (gateway_agent/relay/sessions.py)
    def on_unknown_addr(self) -> Callable[[bytes], None] | None:
        """Called (passive mode) with the DevAddr of a frame no cached session verified."""
        return self.passive.on_unknown_addr

    @on_unknown_addr.setter
    def on_unknown_addr(self, fn: Callable[[bytes], None] | None) -> None:
        self.passive.on_unknown_addr = fn

    @property
    def on_join_heard(self) -> Callable[[bytes], None] | None:
        """Called (passive mode) with the DevEUI of a known device's join-request."""
        return self.passive.on_join_heard

    @on_join_heard.setter
    def on_join_heard(self, fn: Callable[[bytes], None] | None) -> None:
        self.passive.on_join_heard = fn

    def apply_session(
        self, dev_eui: bytes, dev_addr: bytes, nwk_s_key: bytes, app_s_key: bytes, f_cnt_up: int
    ) -> str:
        """A session fetched from the central server becomes the device's (cached now, stored
        with the next commit); frames parked for it are handled again. Event loop only."""
        f = FetchedSession(dev_eui, dev_addr, nwk_s_key, app_s_key, f_cnt_up)
        outcome, parked = self.passive.apply(f)
        if parked:
            self.passive.retrying = True
            try:
                for group in parked:
                    self._guard(self.uplinks.handle_uplink, group)
            finally:
                self.passive.retrying = False
        return outcome

    def build_reading(self, dev: Device, res: UplinkAccepted, rx: tuple[RxInfo, ...]) -> Reading:
        return build_reading(self.cfg.agent.gateway_id, dev, res, rx, self.counters, self.limiter)

    def tick_rules(self, now_wall: float) -> None:
        """Timer path for silence and `for` windows that elapse without uplinks."""
        self.rules.tick(now_wall)

    def add_alert(self, a: Alert, dev: Device | None) -> None:
        self.stage.alert(a, dev)

    def add_event(self, kind: str, data: dict[str, Any]) -> None:
        self.stage.event(kind, data)

    # -- main loop -----------------------------------------------------------------------

    async def run(self, frames: asyncio.Queue[RadioFrame], stop: asyncio.Event) -> None:
        interval = self.cfg.store.commit_interval_ms / 1000.0
        stage, handle = self.stage, self.uplinks.handle_uplink
        while True:
            self.heartbeat = time.monotonic()
            now = time.monotonic()
            deadline = self.dedup.next_deadline()
            timeout = 0.5
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            # A batch holding a downlink (ACK, join-accept, queued data) commits at once: the
            # downlink goes out only after the commit, and RX1 is ~1 s after the uplink.
            urgent = bool(stage.post.downlinks)
            if stage.started is not None:
                due_in = 0.0 if urgent else self._last_commit + interval - now
                if due_in <= 0 and self._commit_busy():
                    due_in = 0.002  # due, but the last commit is still syncing: poll for it
                timeout = min(timeout, max(0.0, due_in))
            if stop.is_set() and frames.empty():
                break
            first: RadioFrame | None = None
            try:
                if frames.empty() and timeout > 0:
                    first = await asyncio.wait_for(frames.get(), timeout=timeout)
                else:
                    # Busy: no timer task per round (wait_for makes one), just let the
                    # sources run once, then take what they queued.
                    await asyncio.sleep(0)
            except TimeoutError:
                pass
            self._add_frames(first, frames)
            for group in self.dedup.pop_due(time.monotonic()):
                self._guard(handle, group)
            rows = self.cfg.store.commit_rows
            urgent = bool(stage.post.downlinks)
            # Due once `interval` has passed since the last commit began, not since the batch's
            # first row: at most one commit per interval as before (the wear bound), but an
            # uplink after a quiet spell commits at once instead of waiting a whole window in
            # memory, where a power cut would take it (docs/commit-policy.md).
            due = stage.started is not None and (
                urgent
                or time.monotonic() - self._last_commit >= interval
                or len(stage.batch) >= rows
            )
            # Group commit that adapts to the disk: while the last commit still syncs, the
            # batch keeps growing (to 8x commit_rows) instead of the loop waiting for it.
            if due and (not self._commit_busy() or urgent or len(stage.batch) >= 8 * rows):
                await self.flush(wait=False)
        # Stop: everything still in the dedup window is handled now, then the last batch.
        for group in self.dedup.pop_due(float("inf")):
            self._guard(handle, group)
        await self.flush()

    def _add_frames(self, first: RadioFrame | None, frames: asyncio.Queue[RadioFrame]) -> None:
        """Everything queued (at most 2000) into the dedup window, without yielding per frame."""
        now, add, get = time.monotonic(), self.dedup.add, frames.get_nowait
        relay = self._relay if self.relay_encode is not None else None
        n = dup = 0
        if first is not None:
            n, dup = 1, 0 if add(first, now) else 1
            if relay is not None:
                relay(first)
        try:
            for _ in range(2000):
                fr = get()
                n += 1
                if not add(fr, now):
                    dup += 1
                if relay is not None:
                    relay(fr)
        except asyncio.QueueEmpty:
            pass
        if n:
            self.counters.inc("frames_received", n)
        if dup:
            self.counters.inc("frames_duplicate", dup)

    def _relay(self, fr: RadioFrame) -> None:
        """Every reception, known device or not, into the relay's lane (`[relay]`). A frame the
        encoder refuses is counted, never fatal."""
        assert self.relay_encode is not None
        try:
            out = self.relay_encode(fr)
        except Exception:
            self.counters.internal_error("relay_encode")
            return
        if out is not None:
            self.stage.relay(*out)

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except BadInput as e:
            self.counters.bad_input(e.reason)
            self.limiter.warn("uplink_rejected", reason=e.reason)
        except Exception:
            self.counters.internal_error("ingest")
            self.limiter.exception("internal_error", where="ingest")

    # -- commit --------------------------------------------------------------------------

    async def flush(self, wait: bool = True) -> None:
        """Commit the open batch in one transaction (invariant 1).

        With `wait=False` the run loop goes on filling the next batch while this one commits:
        SQLite works in the store thread without the GIL. At most one commit is in flight, so a
        batch that falls due first waits for the one before it."""
        async with self._flush_lock:
            await self._settle()
            b = self.stage.batch
            if not (len(b) or b.rule_state or b.fcnt_up or b.fcnt_down or b.downlinks_sent):
                self.stage.started = None
                return
            batch, post = self.stage.take()
            self._last_commit = time.monotonic()
            self._inflight = (batch, asyncio.ensure_future(self._commit(batch, post)))
        if wait:
            await self._settle()

    def _commit_busy(self) -> bool:
        return self._inflight is not None and not self._inflight[1].done()

    async def _settle(self) -> None:
        inflight = self._inflight
        if inflight is not None:
            try:
                await inflight[1]
            finally:
                self._inflight = None

    def _open_batches(self) -> list[Batch]:
        """The batch filling now and the one committing (joins must see both)."""
        b = self.stage.batch
        return [b] if self._inflight is None else [self._inflight[0], b]

    async def _commit(self, batch: Batch, post: PostCommit) -> None:
        n = len(batch.readings)
        try:
            await self.store_call(self.store.commit_batch, batch)
        except (StoreError, DiskFullError) as e:
            self.refused += n
            self.counters.inc("readings_refused", n, reason=e.reason)
            self.limiter.warn("commit_failed", reason=e.reason, readings=n, error=str(e))
            # Nothing was accepted: forget the in-memory counter advances and joins of this
            # batch, keeping those of the batch that filled meanwhile.
            await self.store_call(self.load)
            self._reapply(self.stage.batch)
            for tx, _ in post.downlinks:  # not sent: the uplink was not accepted
                self.downlinks.requeue(tx)
            live = self.live_publish
            for a in post.alerts:  # alerts are still raised locally and go out live
                log_event(
                    log, logging.ERROR, "alert_not_stored", rule=a.rule, dev_eui=a.dev_eui.hex()
                )
                if live is not None:
                    live(*alert_publication(a))
            return
        self.accepted += n
        self.counters.inc("readings_accepted", n)
        self.nonces.committed(batch)
        if len(self.downlinks.fcnt.handed) > len(self.cache.devices) + 1024:
            self.downlinks.fcnt.prune(self.cache.devices)
        self.on_commit()
        for tx, _ in post.downlinks:
            self.downlinks.send(tx)
        if self.run_actions is not None:
            for a in post.alerts:
                dev = self.cache.devices.get(a.dev_eui)
                if dev is not None:
                    self.run_actions(a, dev)

    def _reapply(self, b: Batch) -> None:
        """After a reload from the store: the uncommitted joins and counters of `b` again."""
        self.cache.reapply(b)
