"""The story of one uplink, in order: `Uplinks.handle_uplink` names each step, a call into the
module that owns it (model: ChirpStack's chirpstack/src/uplink/data.rs `_handle`)."""

from __future__ import annotations

from gateway_agent.config import Config
from gateway_agent.ingest.downlinks import Downlinks
from gateway_agent.ingest.joins import Joins
from gateway_agent.ingest.mac import Mac
from gateway_agent.ingest.passive import Passive, max_fcnt_gap
from gateway_agent.ingest.reading import build_reading
from gateway_agent.ingest.rules_runner import RuleRunner
from gateway_agent.ingest.sessions import SessionCache
from gateway_agent.ingest.stage import Stage
from gateway_agent.logfmt import RateLimitedLog
from gateway_agent.lorawan import frame as lw_frame
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.session import (
    DeviceSession,
    UplinkAccepted,
    UplinkRejected,
    UplinkResult,
    UplinkRetransmission,
    verify_uplink,
)
from gateway_agent.metrics import Counters


class Uplinks:
    def __init__(
        self,
        cfg: Config,
        cache: SessionCache,
        joins: Joins,
        mac: Mac,
        rules: RuleRunner,
        stage: Stage,
        downlinks: Downlinks,
        counters: Counters,
        limiter: RateLimitedLog,
        passive: Passive | None = None,
    ) -> None:
        self.cfg = cfg
        self.passive = passive
        self.cache = cache
        self.joins = joins
        self.mac = mac
        self.rules = rules
        self.stage = stage
        self.downlinks = downlinks
        self.counters = counters
        self.limiter = limiter

    def handle_uplink(self, group: FrameGroup) -> None:
        """One frame as the dedup window grouped it: every gateway's reception, best first.

        Bad input raises `BadInput` (counted by the run loop); an accepted uplink only changes
        memory and the open batch, and its answer goes out after the commit (invariant 1)."""
        fr = lw_frame.parse_phy(group.phy_payload)
        if not isinstance(fr, lw_frame.DataFrame) or not fr.uplink:
            self.not_a_data_uplink(fr, group)  # a join-request goes to joins.py
            return
        # Session by DevAddr, MIC, FCnt32, decryption: pure, in lorawan/session.py.
        lw = self.cfg.lorawan
        res = verify_uplink(
            fr, self.cache.by_addr.get(fr.dev_addr, ()), max_fcnt_gap(lw.mode, lw.max_fcnt_gap)
        )
        if not isinstance(res, UplinkAccepted):
            self.not_accepted(fr, res, group)
            return
        dev = self.cache.devices.get(res.session.dev_eui)
        if dev is None:  # removed meanwhile
            self.counters.bad_input("unknown_device")
            return
        self.cache.set_session(res.new_session)  # its FCntUp commits with the reading
        if res.fcnt_reset:  # a new counter run of the same keys: its epoch names the ids
            self.stage.fcnt_reset(dev.dev_eui, res.new_session.reset_epoch)
        reading = build_reading(
            self.cfg.agent.gateway_id, dev, res, group.rx, self.counters, self.limiter
        )
        self.stage.reading(dev, reading)
        self.rules.evaluate(dev, reading)
        if lw.mode == "passive":  # the central server answers: no ACK, MAC, ADR or queued data
            if res.confirmed or res.mac_commands or res.adr_ack_req:
                self.counters.inc("downlink_suppressed", reason="passive")
            return
        fopts, answered = self.mac.answers(dev.dev_eui, res, group, reading.time)
        # ADRACKReq: the device steps its data rate down unless some downlink comes back.
        if res.confirmed or fopts or res.adr_ack_req or self.downlinks.has_queued(dev.dev_eui):
            planned = self.answer(
                res.new_session,
                group,
                ack=res.confirmed,
                fopts=fopts,
                empty_ok=res.adr_ack_req,
            )
            for name in answered if planned else ():
                self.counters.inc("mac_answered", command=name)

    def not_a_data_uplink(self, phy: lw_frame.PhyFrame, group: FrameGroup) -> None:
        if isinstance(phy, lw_frame.JoinRequest):
            self.joins.handle_join(phy, group)
        elif isinstance(phy, lw_frame.DataFrame):
            self.counters.bad_input("downlink_heard")
        else:
            self.counters.bad_input("unsupported_mtype")

    def not_accepted(self, fr: lw_frame.DataFrame, res: UplinkResult, group: FrameGroup) -> None:
        """A rejected uplink is counted; a retransmission of a confirmed one is ACKed again."""
        if isinstance(res, UplinkRejected):
            passive = self.cfg.lorawan.mode == "passive"
            if passive and self.passive is not None and res.reason in ("unknown_device", "mic"):
                # Another gateway heard the join (or the frames between): ask the API.
                self.passive.want(fr.dev_addr, group)
            self.counters.bad_input(res.reason)
            self.limiter.warn(
                "uplink_rejected", reason=res.reason, dev_addr=fr.dev_addr.hex(), fcnt=fr.fcnt16
            )
            return
        assert isinstance(res, UplinkRetransmission)
        self.counters.inc("uplink_retransmissions")
        if res.confirmed:
            if self.cfg.lorawan.mode == "passive":
                self.counters.inc("downlink_suppressed", reason="passive")
            else:
                self.answer(res.session, group)

    def answer(
        self,
        s: DeviceSession,
        group: FrameGroup,
        ack: bool = True,
        fopts: bytes = b"",
        empty_ok: bool = True,
    ) -> bool:
        """Plan the class-A answer to an uplink of `s`, sent once the batch holding its FCntDown
        committed (a retransmission's ACK too); False when there is none to send or no gateway
        that heard it can transmit."""
        tx = self.downlinks.answer(s, group, ack, fopts, empty_ok)
        if tx is None:
            return False
        self.stage.downlink(tx, s.dev_eui)
        return True
