"""Class-A downlinks of the ingest: the application queue per device, which receive window a
downlink goes out in (in time, duty-cycle budget per gateway and sub-band), RX2 after the gateway
refused RX1, and queued downlinks that never went on air. No SQLite here: the FCntDown and the
queue's marks ride in the open batch (stage.py), committed before anything is sent."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gateway_agent.config import LorawanConfig
from gateway_agent.errors import BadInput
from gateway_agent.ingest.fcntdown import FCntDown
from gateway_agent.ingest.stage import Stage
from gateway_agent.logfmt import RateLimitedLog
from gateway_agent.lorawan import region as lw_region
from gateway_agent.lorawan.airtime import DutyCycleTracker, airtime_ms
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.downlink import build_downlink
from gateway_agent.lorawan.radio import DownlinkTx, RxInfo
from gateway_agent.lorawan.session import DeviceSession
from gateway_agent.metrics import Counters
from gateway_agent.store import Store

# TX_ACK errors after which the same frame is worth trying in the next receive window
RETRY_ERRORS = frozenset(("TOO_LATE", "COLLISION_PACKET"))
MAX_DUTY_GATEWAYS = 1024
# Downlinks the network sends of its own accord (ADR requests, MAC answers, an ADRACKReq's empty
# frame) may use only this share of a sub-band's duty-cycle budget: the rest stays for ACKs,
# join-accepts and application downlinks, which a big fleet's ADR must never crowd out.
OPTIONAL = frozenset(("mac", "adr"))
OPTIONAL_SHARE = 0.5
# Queue entries that went into a frame lately, by seq, so one that never went on air can wait
# again in memory (a TX_ACK refusal comes within seconds; duty cycle keeps them few).
MAX_RECENT = 4096


def _carrying(tx: DownlinkTx, seq: int) -> DownlinkTx:
    """`tx` and its fallbacks marked with the application-queue entry they carry."""
    fb = _carrying(tx.fallback, seq) if tx.fallback is not None else None
    return replace(tx, queue_seq=seq, fallback=fb)


class Downlinks:
    def __init__(
        self,
        lorawan: LorawanConfig,
        store: Store,
        stage: Stage,
        counters: Counters,
        limiter: RateLimitedLog,
        send_downlink: Callable[[DownlinkTx], bool],
        can_downlink: Callable[[str], bool],
    ) -> None:
        self.lorawan = lorawan
        self.store = store  # for tests and tools: the ingest itself never calls it
        self.stage = stage
        self.fcnt = FCntDown()
        self.counters = counters
        self.limiter = limiter
        self.send_downlink = send_downlink
        self.can_downlink = can_downlink
        self.queued: dict[bytes, list[dict[str, Any]]] = {}  # dev_eui -> unsent, in seq order
        self.duty: dict[str, DutyCycleTracker] = {}  # gateway id -> its downlink airtime
        self.recent: dict[int, tuple[bytes, dict[str, Any]]] = {}  # seq -> (dev_eui, entry)

    def enqueue(self, dev_eui: bytes, seq: int, f_port: int, payload: bytes) -> None:
        """A downlink the store just queued (CLI, rule action): out with the next uplink."""
        self.queued.setdefault(dev_eui, []).append(
            {"seq": seq, "f_port": f_port, "payload": payload}
        )

    @property
    def region(self) -> lw_region.Region:
        return lw_region.REGIONS[self.lorawan.region]

    def route(self, group: FrameGroup) -> RxInfo | None:
        """The best reception through a gateway we can transmit with (rx is sorted best-first)."""
        for rx in group.rx:
            if rx.tmst is not None and self.can_downlink(rx.gateway_id):
                return rx
        return None

    def has_queued(self, dev_eui: bytes) -> bool:
        return dev_eui in self.queued

    def answer(
        self,
        s: DeviceSession,
        group: FrameGroup,
        ack: bool,
        fopts: bytes = b"",
        empty_ok: bool = True,
    ) -> DownlinkTx | None:
        """The class-A answer to an uplink of session `s`: the ACK (when `ack`), MAC answers in
        `fopts` and the next queued application downlink, for RX1 with RX2 as fallback; with
        none of them, an empty frame when `empty_ok` (what an ADRACKReq asks for). A queued
        downlink too large for the window's data rate stays queued for a later uplink. Its
        FCntDown is staged in the open batch: send it only after that batch committed
        (LORAWAN.md 5.2). None when there is nothing to send or no gateway that heard the uplink
        can transmit. Passive mode: always None (the central server answers)."""
        if self.lorawan.mode == "passive":
            self.counters.inc("downlink_suppressed", reason="passive")
            return None
        queued = self.queued.get(s.dev_eui) or []
        item = queued[0] if queued else None
        rx = self.route(group)
        if rx is None:
            purpose = "data" if item is not None else "ack" if ack else "mac" if fopts else "adr"
            self.counters.inc("downlink_no_route", purpose=purpose)
            return None
        lw = self.lorawan

        def plan(phy: bytes, purpose: str) -> DownlinkTx:
            return lw_region.class_a_tx(
                self.region,
                rx,
                phy,
                rx1_delay_s=lw.rx1_delay_s,
                rx1_dr_offset=lw.rx1_dr_offset,
                rx2_freq_hz=lw.rx2_freq_hz,
                rx2_dr=lw.rx2_dr,
                power_dbm=lw.downlink_power_dbm,
                purpose=purpose,
                dev_eui=s.dev_eui,
            )

        # MHDR, DevAddr, FCtrl, FCnt, FOpts, [FPort, FRMPayload], MIC
        if item is not None and 12 + len(fopts) + 1 + len(item["payload"]) > self.max_phy(
            plan(b"", "data")
        ):
            self.counters.inc("downlink_deferred", reason="too_large")
            self.limiter.warn(
                "downlink_deferred",
                reason="too_large",
                dev_eui=s.dev_eui.hex(),
                size=len(item["payload"]),
            )
            item = None
        if item is None and not (ack or fopts or empty_ok):
            return None
        purpose = "data" if item is not None else "ack" if ack else "mac" if fopts else "adr"
        fcnt_down = self.fcnt.take(s)
        self.stage.fcnt_down(s.dev_eui, fcnt_down + 1)  # persisted before sending (5.2)
        phy = build_downlink(
            replace(s, fcnt_down=fcnt_down),
            fcnt_down,
            ack=ack,
            f_port=item["f_port"] if item else None,
            payload=bytes(item["payload"]) if item else b"",
            fopts=fopts,
            f_pending=len(queued) > (1 if item is not None else 0),
        )
        tx = plan(phy, purpose)
        if item is not None:
            tx = _carrying(tx, int(item["seq"]))
            queued.pop(0)
            if not queued:
                self.queued.pop(s.dev_eui, None)
            self.stage.downlink_sent(int(item["seq"]), fcnt_down)
            self._remember(s.dev_eui, item)
        return tx

    def max_phy(self, tx: DownlinkTx) -> int:
        """The largest PHYPayload the data rate of `tx` carries (LORAWAN.md 10: M + 5)."""
        try:
            dr = lw_region.dr_from_sf_bw(self.region, tx.sf, tx.bw_khz)
        except BadInput:
            return 255
        return self.region.data_rate(dr).max_phy_payload

    def send(self, tx: DownlinkTx, reason: str = "") -> None:
        """Send `tx`, or its fallback (RX2) when its own window can no longer be reached in time
        or its sub-band has no duty-cycle budget left (LORAWAN.md 10)."""
        if self.lorawan.mode == "passive":  # planned before a reload made the agent passive
            self.counters.inc("downlink_suppressed", reason="passive")
            self.requeue(tx)
            return
        now = time.monotonic()
        first, pick = tx, None
        why = reason or "too_late"
        cand: DownlinkTx | None = tx
        while cand is not None:
            if cand.send_by is not None and now > cand.send_by:
                why = "too_late"
            elif len(cand.phy_payload) > self.max_phy(cand):
                why = "too_large"  # RX2's slower data rate cannot carry this frame
            elif not self._duty_available(cand, now):
                why = "duty_cycle"
            else:
                pick = cand
                break
            cand = cand.fallback
        if pick is None:
            self._missed(first, why)
            return
        if pick is not first or reason:
            self.counters.inc(
                "downlink_fallback", purpose=first.purpose, reason=why, window=pick.window
            )
        if self.send_downlink(pick):
            self._duty_record(pick, now)
            self.counters.inc("downlinks_sent", purpose=pick.purpose)
        else:
            self.counters.inc("downlink_no_route", purpose=pick.purpose)
            self.requeue(pick)

    def requeue(self, tx: DownlinkTx) -> None:
        """A queued application downlink that never went on air waits for the device's next
        uplink again, at the head of its queue (its FCntDown is spent: the next try takes a
        new one). In the store it is pending again with the next commit."""
        if tx.queue_seq is None or tx.dev_eui is None:
            return
        self.stage.downlink_unsent(tx.queue_seq)
        known = self.recent.get(tx.queue_seq)
        if known is None or known[0] != tx.dev_eui:
            # Not one this process put in a frame lately: it goes out after a restart.
            self.limiter.warn("downlink_requeue_unknown", seq=tx.queue_seq)
            return
        item = known[1]
        queue = self.queued.setdefault(tx.dev_eui, [])
        if all(q["seq"] != item["seq"] for q in queue):
            queue.insert(0, item)
            queue.sort(key=lambda q: int(q["seq"]))
        self.counters.inc("downlink_requeued")

    def _remember(self, dev_eui: bytes, item: dict[str, Any]) -> None:
        recent = self.recent
        recent.pop(int(item["seq"]), None)
        if len(recent) >= MAX_RECENT:
            recent.pop(next(iter(recent)))
        recent[int(item["seq"])] = (dev_eui, item)

    def refused(self, tx: DownlinkTx, error: str) -> None:
        """A gateway's TX_ACK refused `tx` (the source calls this): a frame refused as too late
        or colliding is tried again in the device's next window, when there is one."""
        if error not in RETRY_ERRORS:
            return
        if tx.fallback is None:
            self._missed(tx, "refused")
            return
        self.send(tx.fallback, reason="refused")

    def _missed(self, tx: DownlinkTx, reason: str) -> None:
        self.counters.inc("downlink_missed", purpose=tx.purpose, reason=reason)
        self.requeue(tx)
        self.limiter.warn(
            "downlink_missed",
            key=f"missed:{reason}",
            purpose=tx.purpose,
            reason=reason,
            gateway=tx.gateway_id,
            dev_eui=tx.dev_eui.hex() if tx.dev_eui else None,
        )

    def _airtime(self, tx: DownlinkTx) -> tuple[str, float] | None:
        band = self.region.sub_band(tx.freq_hz)
        if band is None:
            return None  # outside the region's sub-bands: no budget known (config checks)
        try:
            cr = int(tx.code_rate.partition("/")[2]) - 4
        except ValueError:
            cr = 1
        cr = cr if 1 <= cr <= 4 else 1
        return band.name, airtime_ms(len(tx.phy_payload), tx.sf, tx.bw_khz, cr, crc=False)

    def _duty_available(self, tx: DownlinkTx, now: float) -> bool:
        use = self._airtime(tx)
        tracker = self.duty.get(tx.gateway_id)
        share = OPTIONAL_SHARE if tx.purpose in OPTIONAL else 1.0
        return use is None or tracker is None or tracker.available(use[0], use[1], now, share)

    def _duty_record(self, tx: DownlinkTx, now: float) -> None:
        use = self._airtime(tx)
        if use is None:
            return
        tracker = self.duty.get(tx.gateway_id)
        if tracker is None:
            if len(self.duty) >= MAX_DUTY_GATEWAYS:
                self.duty.pop(next(iter(self.duty)))
            tracker = self.duty[tx.gateway_id] = DutyCycleTracker(self.region.duty_cycle_limits)
        tracker.record(use[0], use[1], now)
