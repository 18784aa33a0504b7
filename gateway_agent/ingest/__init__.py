"""The ingest loop: frames -> dedup -> LoRaWAN core -> decode -> rules -> one group commit.

Owns the in-memory session cache (DevAddr -> sessions) and the pending `Batch`. A frame counts as
accepted only once its batch is committed (invariant 1); post-commit actions (ACKs, join-accepts,
rule actions) run only after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import decoders
from gateway_agent.config import Config
from gateway_agent.errors import BadInput, CodecError, DiskFullError, StoreError
from gateway_agent.ingest.downlinks import Downlinks
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.lorawan import adr as lw_adr
from gateway_agent.lorawan import frame as lw_frame
from gateway_agent.lorawan import join as lw_join
from gateway_agent.lorawan import region as lw_region
from gateway_agent.lorawan.dedup import DedupWindow, FrameGroup
from gateway_agent.lorawan.downlink import mac_answers
from gateway_agent.lorawan.frozen import fast_constructor
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame, RxInfo
from gateway_agent.lorawan.session import (
    DeviceSession,
    UplinkAccepted,
    UplinkRejected,
    UplinkRetransmission,
    verify_uplink,
)
from gateway_agent.metrics import Counters
from gateway_agent.model import Alert, Device, Reading, reading_id
from gateway_agent.rules import engine
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING, Batch, Store
from gateway_agent.upstream.formats import alert_message, dumps, event_message
from gateway_agent.upstream.wire import uplink_body

log = logging.getLogger(__name__)
StoreCall = Callable[..., Awaitable[Any]]
_EMPTY: Any = MappingProxyType({})
_new_reading = fast_constructor(Reading)
WALL_CLOCK_VALID_AFTER = 1_700_000_000.0  # 2023-11: a Pi that booted without NTP says 1970


def _joined(dev_eui: bytes, dev_addr: bytes, nwk_s_key: bytes, app_s_key: bytes) -> DeviceSession:
    """The fresh session of an accepted join: no uplink counted yet, FCntDown from zero."""
    return DeviceSession(
        dev_eui=dev_eui,
        dev_addr=dev_addr,
        nwk_s_key=nwk_s_key,
        app_s_key=app_s_key,
        fcnt_up=None,
        fcnt_down=0,
    )


@dataclass(slots=True)
class PostCommit:
    downlinks: list[tuple[DownlinkTx, bytes | None]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


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
        self.cfg = cfg
        self.store = store
        self.store_call = store_call
        self.counters = counters
        self.on_commit = on_commit
        self.run_actions = run_actions
        self._next_sweep = 0.0
        # Forwarder.publish_live: alerts go out live when the disk refuses the commit (issue 5)
        self.live_publish: Callable[[str, str], Any] | None = None
        self.limiter = RateLimitedLog(log, window_s=10.0)
        self.downlinks = Downlinks(
            cfg.lorawan, store, counters, self.limiter, send_downlink, can_downlink
        )
        self.dedup = DedupWindow(cfg.lorawan.dedup_window_ms / 1000.0)
        self.devices: dict[bytes, Device] = {}
        self.sessions: dict[bytes, list[DeviceSession]] = {}  # dev_addr -> sessions
        self.addr_of: dict[bytes, bytes] = {}  # dev_eui -> dev_addr of its session
        self.by_join: dict[tuple[bytes, bytes], Device] = {}  # (join_eui, dev_eui) -> device
        self.rule_states: dict[tuple[str, str], Any] = {}
        self.batch = Batch()
        self.post = PostCommit()
        self.batch_started: float | None = None
        self.heartbeat = time.monotonic()
        self.accepted = 0
        self.refused = 0
        self.last_uplink: dict[bytes, float] = {}
        self.adr_states: dict[bytes, lw_adr.AdrState] = {}  # devices that asked for ADR
        self._flush_lock = asyncio.Lock()
        self._inflight: tuple[Batch, asyncio.Future[None]] | None = None

    @property
    def region(self) -> lw_region.Region:
        return lw_region.REGIONS[self.cfg.lorawan.region]

    # -- cache ---------------------------------------------------------------------------

    def load(self) -> None:
        """(Re)load devices, sessions and rule state from the store. Call from the store thread."""
        devices: dict[bytes, Device] = {}
        sessions: dict[bytes, list[DeviceSession]] = {}
        by_join: dict[tuple[bytes, bytes], Device] = {}
        for dev, st in self.store.devices():
            devices[dev.dev_eui] = dev
            if dev.join_eui is not None:
                by_join[(dev.join_eui, dev.dev_eui)] = dev
            if dev.dev_addr and dev.nwk_s_key and dev.app_s_key:
                s = DeviceSession(
                    dev_eui=dev.dev_eui,
                    dev_addr=dev.dev_addr,
                    nwk_s_key=dev.nwk_s_key.reveal_bytes(),
                    app_s_key=dev.app_s_key.reveal_bytes(),
                    fcnt_up=st["fcnt_up"],
                    fcnt_down=st["fcnt_down"],
                    relaxed_fcnt=dev.relaxed_fcnt,
                )
                sessions.setdefault(dev.dev_addr, []).append(s)
        self.devices, self.sessions, self.by_join = devices, sessions, by_join
        self.addr_of = {x.dev_eui: addr for addr, lst in sessions.items() for x in lst}
        self.rule_states = dict(self.store.rule_states())

    def _set_session(self, s: DeviceSession) -> None:
        """Replace the device's session; an OTAA rejoin moves it to its new DevAddr."""
        old_addr = self.addr_of.get(s.dev_eui)
        if old_addr is not None and old_addr != s.dev_addr:
            rest = [x for x in self.sessions.get(old_addr, []) if x.dev_eui != s.dev_eui]
            if rest:
                self.sessions[old_addr] = rest
            else:
                self.sessions.pop(old_addr, None)
        lst = self.sessions.get(s.dev_addr)
        if lst is None:
            self.sessions[s.dev_addr] = [s]
        else:
            for i, x in enumerate(lst):
                if x.dev_eui == s.dev_eui:
                    lst[i] = s
                    break
            else:
                lst.append(s)
        self.addr_of[s.dev_eui] = s.dev_addr

    # -- main loop -----------------------------------------------------------------------

    async def run(self, frames: asyncio.Queue[RadioFrame], stop: asyncio.Event) -> None:
        interval = self.cfg.store.commit_interval_ms / 1000.0
        while True:
            self.heartbeat = time.monotonic()
            now = time.monotonic()
            deadline = self.dedup.next_deadline()
            timeout = 0.5
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            # A batch holding a downlink (ACK, join-accept, queued data) commits at once: the
            # downlink goes out only after the commit, and RX1 is ~1 s after the uplink.
            urgent = bool(self.post.downlinks)
            if self.batch_started is not None:
                due_in = 0.0 if urgent else self.batch_started + interval - now
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
                self._guard(self.handle_group, group)
            rows = self.cfg.store.commit_rows
            urgent = bool(self.post.downlinks)
            due = self.batch_started is not None and (
                urgent
                or time.monotonic() - self.batch_started >= interval
                or len(self.batch) >= rows
            )
            # Group commit that adapts to the disk: while the last commit still syncs, the
            # batch keeps growing (to 8x commit_rows) instead of the loop waiting for it.
            if due and (not self._commit_busy() or urgent or len(self.batch) >= 8 * rows):
                await self.flush(wait=False)
        # Stop: everything still in the dedup window is handled now, then the last batch.
        for group in self.dedup.pop_due(float("inf")):
            self._guard(self.handle_group, group)
        await self.flush()

    def _add_frames(self, first: RadioFrame | None, frames: asyncio.Queue[RadioFrame]) -> None:
        """Everything queued (at most 2000) into the dedup window, without yielding per frame."""
        now, add, get = time.monotonic(), self.dedup.add, frames.get_nowait
        n = dup = 0
        if first is not None:
            n, dup = 1, 0 if add(first, now) else 1
        try:
            for _ in range(2000):
                fr = get()
                n += 1
                if not add(fr, now):
                    dup += 1
        except asyncio.QueueEmpty:
            pass
        if n:
            self.counters.inc("frames_received", n)
        if dup:
            self.counters.inc("frames_duplicate", dup)

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except BadInput as e:
            self.counters.bad_input(e.reason)
            self.limiter.warn("uplink_rejected", reason=e.reason)
        except Exception:
            self.counters.internal_error("ingest")
            self.limiter.exception("internal_error", where="ingest")

    # -- per frame -----------------------------------------------------------------------

    def handle_group(self, group: FrameGroup) -> None:
        phy = lw_frame.parse_phy(group.phy_payload)
        if isinstance(phy, lw_frame.JoinRequest):
            self.handle_join(phy, group)
        elif isinstance(phy, lw_frame.DataFrame):
            if not phy.uplink:
                self.counters.bad_input("downlink_heard")
                return
            self.handle_data(phy, group)
        else:
            self.counters.bad_input("unsupported_mtype")

    def handle_data(self, fr: lw_frame.DataFrame, group: FrameGroup) -> None:
        sessions = self.sessions.get(fr.dev_addr, [])
        res = verify_uplink(fr, sessions, self.cfg.lorawan.max_fcnt_gap)
        if isinstance(res, UplinkRejected):
            self.counters.bad_input(res.reason)
            self.limiter.warn(
                "uplink_rejected", reason=res.reason, dev_addr=fr.dev_addr.hex(), fcnt=fr.fcnt16
            )
            return
        if isinstance(res, UplinkRetransmission):
            self.counters.inc("uplink_retransmissions")
            if res.confirmed:
                self._ack(res.session, group, post=False)
            return
        assert isinstance(res, UplinkAccepted)
        dev = self.devices.get(res.session.dev_eui)
        if dev is None:  # removed meanwhile
            self.counters.bad_input("unknown_device")
            return
        self._set_session(res.new_session)
        reading = self.build_reading(dev, res, group.rx)
        self.add_reading(dev, reading)
        fopts = b""
        answered: tuple[str, ...] = ()
        if res.mac_commands:  # LinkCheckReq / DeviceTimeReq are answered by the network
            fopts, answered = mac_answers(res.mac_commands, group.rx, reading.time)
        if self.cfg.lorawan.adr and (res.adr or dev.dev_eui in self.adr_states):
            req = self._adr(dev.dev_eui, res, group)
            if req and len(fopts) + len(req) <= lw_frame.MAX_FOPTS:
                fopts += req
                answered += ("LinkADRReq",)
        # ADRACKReq: the device steps its data rate down unless some downlink comes back.
        if res.confirmed or fopts or res.adr_ack_req or self.downlinks.has_queued(dev.dev_eui):
            planned = self._ack(
                res.new_session,
                group,
                post=True,
                ack=res.confirmed,
                fopts=fopts,
                empty_ok=res.adr_ack_req,
            )
            for name in answered if planned else ():
                self.counters.inc("mac_answered", command=name)

    def _adr(self, dev_eui: bytes, res: UplinkAccepted, group: FrameGroup) -> bytes:
        """Account the uplink for network-side ADR; the LinkADRReq to send now, or b""."""
        try:
            dr = lw_region.uplink_dr(self.region, group.rx[0])
        except BadInput:
            return b""
        st = self.adr_states.get(dev_eui)
        if st is None:
            st = self.adr_states[dev_eui] = lw_adr.AdrState()
        snrs = [r.snr_db for r in group.rx if r.snr_db is not None]
        req, outcome = lw_adr.uplink(
            self.region,
            st,
            dr=dr,
            snr_db=max(snrs) if snrs else None,
            adr=res.adr and self.downlinks.route(group) is not None,  # a serial modem: no
            commands=res.mac_commands,
            margin_db=self.cfg.lorawan.adr_margin_db,
        )
        if outcome is not None:
            self.counters.inc("adr_outcome", outcome=outcome)
            if outcome != "accepted":
                self.limiter.warn(
                    "adr_not_applied", key=f"adr:{outcome}", outcome=outcome, dev_eui=dev_eui.hex()
                )
        return req

    def build_reading(self, dev: Device, res: UplinkAccepted, rx: tuple[RxInfo, ...]) -> Reading:
        # When the radio heard it (the agent's clock at reception), not when a busy loop got to
        # it: a backlog in the frame queue must not shift reading times.
        now = min(x.rx_wall for x in rx) if rx else time.time()
        dec: decoders.Decoded | None = None
        err: str | None = None
        if res.f_port and dev.codec:
            try:
                dec = decoders.decode(dev.codec, res.f_port, res.payload, dev.settings)
            except CodecError as e:
                err = str(e)
                self.counters.inc("decode_errors", codec=dev.codec, dev_eui=dev.dev_eui.hex())
                self.limiter.warn(
                    "decode_failed",
                    key=f"decode:{dev.dev_eui.hex()}",
                    dev_eui=dev.dev_eui.hex(),
                    codec=dev.codec,
                    reason=e.reason,
                )
        # Every value is already valid (device and session EUIs/addresses, the codec's frozen
        # mappings shared as they are): the positional constructor skips the re-checks.
        return _new_reading(
            reading_id(self.cfg.agent.gateway_id, dev.dev_eui, res.fcnt),
            dev.dev_eui,
            res.session.dev_addr,
            res.fcnt,
            res.f_port,
            res.payload,
            now,
            now > WALL_CLOCK_VALID_AFTER,
            res.confirmed,
            dev.codec,
            dec.measurements if dec is not None else _EMPTY,
            dec.flags if dec is not None else _EMPTY,
            dec.extras if dec is not None else _EMPTY,
            dec.object if dec is not None else _EMPTY,
            err,
            rx,
        )

    def add_reading(self, dev: Device, r: Reading) -> None:
        b = self.batch
        eui = dev.dev_eui.hex()
        best = r.rx[0] if r.rx else None
        rssi = best.rssi_dbm if best else None
        snr = best.snr_db if best else None
        m_json = dumps(dict(r.measurements)) if r.measurements else "{}"
        f_json = dumps(dict(r.flags)) if r.flags else "{}"
        b.readings.append(
            (
                r.id,
                eui,
                r.fcnt,
                r.f_port,
                r.time,
                int(r.time_valid),
                r.payload,
                m_json,
                f_json,
                r.decode_error,
                rssi,
                snr,
                len(r.rx),
            )
        )
        body = uplink_body(
            r, self.cfg.agent.gateway_id, dev.name, dev.tags, self.cfg.upstream.format
        )
        b.outbox.append(
            (PRIO_READING, "up", eui, f"devices/{eui}/up", r.id, body, r.time, time.monotonic())
        )
        b.fcnt_up[eui] = r.fcnt
        b.seen[eui] = (r.time, rssi, snr, m_json)
        self.last_uplink[dev.dev_eui] = r.time
        self.evaluate_rules(dev, r)
        self._touch()

    def evaluate_rules(self, dev: Device, r: Reading) -> None:
        if not self.cfg.rules:
            return
        for rule in self.cfg.rules:
            if not rule.selects(dev):
                continue
            key = (rule.name, dev.dev_eui.hex())
            try:
                state, alerts = engine.evaluate(rule, self._rule_state(key), r, r.time)
            except Exception:
                self.counters.internal_error("rules")
                self.limiter.exception("rule_failed", rule=rule.name)
                continue
            self._rule_result(key, state, alerts, dev)

    def _rule_state(self, key: tuple[str, str]) -> Any:
        st = self.rule_states.get(key)
        if isinstance(st, str):
            try:
                st = engine.state_from_json(st)
            except Exception:
                st = None
            self.rule_states[key] = st
        return st

    def _rule_result(
        self, key: tuple[str, str], state: Any, alerts: list[Alert], dev: Device
    ) -> None:
        self.rule_states[key] = state
        self.batch.rule_state[key] = engine.state_to_json(state) if state is not None else None
        for a in alerts:
            self.add_alert(a, dev)
        self._touch()

    def add_alert(self, a: Alert, dev: Device | None) -> None:
        self.batch.alerts.append(a)
        eui = a.dev_eui.hex()
        self.batch.outbox.append(
            (
                PRIO_ALERT,
                "alert",
                eui,
                f"devices/{eui}/alert",
                a.id,
                dumps(alert_message(a)),
                a.time,
                time.monotonic(),
            )
        )
        self.counters.inc("alerts", state=a.state, rule=a.rule)
        log_event(
            log,
            logging.WARNING if a.state == "raised" else logging.INFO,
            f"alert_{a.state}",
            rule=a.rule,
            dev_eui=eui,
            severity=a.severity,
            measurement=a.measurement,
            value=a.value,
        )
        if dev is not None:
            self.post.alerts.append(a)
        self._touch()

    def tick_rules(self, now_wall: float) -> None:
        """Timer path for silence and `for` windows that elapse without uplinks."""
        if not self.cfg.rules:
            return
        rules = {r.name: r for r in self.cfg.rules}
        if now_wall >= self._next_sweep:
            # Devices never heard since the rule appeared have no state yet: give the kinds that
            # act without uplinks (silence, deviation by activity) their first tick.
            self._next_sweep = now_wall + 60.0
            for rule in self.cfg.rules:
                if rule.kind not in ("silence", "deviation"):
                    continue
                for dev in self.devices.values():
                    key = (rule.name, dev.dev_eui.hex())
                    if key not in self.rule_states and rule.selects(dev):
                        self._tick_one(rule, key, dev, now_wall, force=True)
        for key in list(self.rule_states):
            rule = rules.get(key[0])
            known = self.devices.get(bytes.fromhex(key[1]))
            if rule is None or known is None:
                continue
            self._tick_one(rule, key, known, now_wall)

    def _tick_one(
        self, rule: Any, key: tuple[str, str], dev: Device, now_wall: float, force: bool = False
    ) -> None:
        prev = self._rule_state(key)
        if not force:
            due = engine.next_due(rule, prev)
            if due is None or due > now_wall:
                return
        try:
            state, alerts = engine.tick(rule, prev, dev, now_wall)
        except Exception:
            self.counters.internal_error("rules")
            self.limiter.exception("rule_failed", rule=rule.name)
            return
        if alerts or state is not prev:
            self._rule_result(key, state, alerts, dev)

    def add_event(self, kind: str, data: dict[str, Any]) -> None:
        now = time.time()
        eid = f"{self.cfg.agent.gateway_id}:event:{kind}:{int(now * 1000)}"
        self.batch.outbox.append(
            (
                PRIO_EVENT,
                "event",
                None,
                "events",
                eid,
                dumps(event_message(eid, kind, now, data)),
                now,
                time.monotonic(),
            )
        )
        self._touch()

    def _touch(self) -> None:
        if self.batch_started is None:
            self.batch_started = time.monotonic()

    # -- joins and downlinks -------------------------------------------------------------

    def handle_join(self, jr: lw_frame.JoinRequest, group: FrameGroup) -> None:
        dev = self.by_join.get((jr.join_eui, jr.dev_eui))
        if dev is None or dev.app_key is None:
            self.counters.bad_input("unknown_device", kind="join")
            self.limiter.warn("join_rejected", reason="unknown_device", dev_eui=jr.dev_eui.hex())
            return
        open_batches = self._open_batches()
        used = self.store.used_dev_nonces(dev.dev_eui) | {
            n for b in open_batches for e, n, _ in b.dev_nonces if e == dev.dev_eui.hex()
        }
        row = self.store.device(dev.dev_eui)
        join_nonce = (
            (row[1]["join_nonce"] if row else 0)
            + 1
            + sum(1 for b in open_batches for s in b.sessions if s[0] == dev.dev_eui.hex())
        )
        taken = set(self.sessions)
        dev_addr = lw_join.allocate_dev_addr(
            self.cfg.lorawan.dev_addr_prefix,
            taken,
            seed=int.from_bytes(dev.dev_eui, "big") + join_nonce,
        )
        region = lw_region.REGIONS[self.cfg.lorawan.region]
        res = lw_join.handle_join_request(
            jr,
            dev.app_key.reveal_bytes(),
            used,
            join_nonce,
            self.cfg.lorawan.net_id,
            dev_addr,
            dl_settings=(self.cfg.lorawan.rx1_dr_offset << 4)
            | lw_region.rx2_window(region, rx2_dr=self.cfg.lorawan.rx2_dr)[1],
            rx_delay=self.cfg.lorawan.rx1_delay_s,
            cflist=lw_join.cflist_eu868(region.extra_channels_hz),
        )
        if isinstance(res, lw_join.JoinRejected):
            self.counters.bad_input(f"join_{res.reason}")
            self.limiter.warn(
                "join_rejected", reason=res.reason, dev_eui=jr.dev_eui.hex(), dev_nonce=jr.dev_nonce
            )
            return
        eui = dev.dev_eui.hex()
        self.batch.dev_nonces.append((eui, jr.dev_nonce, time.time()))
        self.batch.sessions.append(
            (eui, res.dev_addr.hex(), res.nwk_s_key, res.app_s_key, join_nonce)
        )
        self._set_session(_joined(dev.dev_eui, res.dev_addr, res.nwk_s_key, res.app_s_key))
        self.counters.inc("joins_accepted")
        log_event(
            log,
            logging.INFO,
            "join_accepted",
            dev_eui=eui,
            dev_addr=res.dev_addr.hex(),
            dev_nonce=jr.dev_nonce,
        )
        self.add_event("device_joined", {"devEui": eui, "devAddr": res.dev_addr.hex()})
        self.adr_states.pop(jr.dev_eui, None)  # a new session starts at the join's data rate
        rx = self.downlinks.route(group)
        if rx is None:
            self.counters.inc("downlink_no_route", purpose="join_accept")
            return
        tx = lw_region.join_accept_windows(
            region, rx, res.join_accept, power_dbm=self.cfg.lorawan.downlink_power_dbm
        )
        self.post.downlinks.append((tx, None))

    def _ack(
        self,
        s: DeviceSession,
        group: FrameGroup,
        post: bool,
        ack: bool = True,
        fopts: bytes = b"",
        empty_ok: bool = True,
    ) -> bool:
        """Plan the class-A answer to an uplink of `s` (after the commit when `post`); False
        when there is none to send or no gateway that heard it can transmit."""
        tx = self.downlinks.answer(s, group, ack, fopts, empty_ok)
        if tx is None:
            return False
        if post:
            self.post.downlinks.append((tx, s.dev_eui))
        else:
            self.downlinks.send(tx)
        return True

    # -- commit --------------------------------------------------------------------------

    async def flush(self, wait: bool = True) -> None:
        """Commit the open batch in one transaction (invariant 1).

        With `wait=False` the run loop goes on filling the next batch while this one commits:
        SQLite works in the store thread without the GIL. At most one commit is in flight, so a
        batch that falls due first waits for the one before it."""
        async with self._flush_lock:
            await self._settle()
            if not len(self.batch) and not self.batch.rule_state and not self.batch.fcnt_up:
                self.batch_started = None
                return
            batch, post = self.batch, self.post
            self.batch, self.post, self.batch_started = Batch(), PostCommit(), None
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
        return [self.batch] if self._inflight is None else [self._inflight[0], self.batch]

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
            self._reapply(self.batch)
            for tx, _ in post.downlinks:  # not sent: the uplink was not accepted
                self.downlinks.requeue(tx)
            live = self.live_publish
            for a in post.alerts:  # alerts are still raised locally and go out live
                log_event(
                    log, logging.ERROR, "alert_not_stored", rule=a.rule, dev_eui=a.dev_eui.hex()
                )
                if live is not None:
                    eui = a.dev_eui.hex()
                    live(f"devices/{eui}/alert", dumps(alert_message(a)))
            return
        self.accepted += n
        self.counters.inc("readings_accepted", n)
        self.on_commit()
        for tx, _ in post.downlinks:
            self.downlinks.send(tx)
        if self.run_actions is not None:
            for a in post.alerts:
                dev = self.devices.get(a.dev_eui)
                if dev is not None:
                    self.run_actions(a, dev)

    def _reapply(self, b: Batch) -> None:
        """After a reload from the store: the uncommitted joins and counters of `b` again."""
        for eui_hex, addr_hex, nk, ak, _ in b.sessions:
            dev = self.devices.get(bytes.fromhex(eui_hex))
            if dev is not None:
                self._set_session(_joined(dev.dev_eui, bytes.fromhex(addr_hex), nk, ak))
        for eui_hex, fcnt in b.fcnt_up.items():
            dev_eui = bytes.fromhex(eui_hex)
            for s in self.sessions.get(self.addr_of.get(dev_eui, b""), []):
                if s.dev_eui == dev_eui and (s.fcnt_up is None or s.fcnt_up < fcnt):
                    self._set_session(s.with_fcnt_up(fcnt))
