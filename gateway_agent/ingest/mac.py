"""The network's side of an uplink's MAC layer: answers to LinkCheckReq/DeviceTimeReq and
network-side ADR (LinkADRReq), with each ADR device's history kept in memory."""

from __future__ import annotations

from gateway_agent.config import Config
from gateway_agent.errors import BadInput
from gateway_agent.ingest.downlinks import Downlinks
from gateway_agent.logfmt import RateLimitedLog
from gateway_agent.lorawan import adr as lw_adr
from gateway_agent.lorawan import frame as lw_frame
from gateway_agent.lorawan import region as lw_region
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.downlink import mac_answers
from gateway_agent.lorawan.session import UplinkAccepted
from gateway_agent.metrics import Counters


class Mac:
    def __init__(
        self, cfg: Config, downlinks: Downlinks, counters: Counters, limiter: RateLimitedLog
    ) -> None:
        self.cfg = cfg
        self.downlinks = downlinks
        self.counters = counters
        self.limiter = limiter
        self.adr_states: dict[bytes, lw_adr.AdrState] = {}  # devices that asked for ADR

    def answers(
        self, dev_eui: bytes, res: UplinkAccepted, group: FrameGroup, now_wall: float
    ) -> tuple[bytes, tuple[str, ...]]:
        """The FOpts to send back for this uplink and the names of the commands they carry."""
        fopts = b""
        answered: tuple[str, ...] = ()
        if res.mac_commands:  # LinkCheckReq / DeviceTimeReq are answered by the network
            fopts, answered = mac_answers(res.mac_commands, group.rx, now_wall)
        if self.cfg.lorawan.adr and (res.adr or dev_eui in self.adr_states):
            req = self._adr(dev_eui, res, group)
            if req and len(fopts) + len(req) <= lw_frame.MAX_FOPTS:
                fopts += req
                answered += ("LinkADRReq",)
        return fopts, answered

    def forget(self, dev_eui: bytes) -> None:
        """A join: the new session starts at the join's data rate, ADR history anew."""
        self.adr_states.pop(dev_eui, None)

    def _adr(self, dev_eui: bytes, res: UplinkAccepted, group: FrameGroup) -> bytes:
        """Account the uplink for network-side ADR; the LinkADRReq to send now, or b""."""
        region = lw_region.REGIONS[self.cfg.lorawan.region]
        try:
            dr = lw_region.uplink_dr(region, group.rx[0])
        except BadInput:
            return b""
        st = self.adr_states.get(dev_eui)
        if st is None:
            st = self.adr_states[dev_eui] = lw_adr.AdrState()
        snrs = [r.snr_db for r in group.rx if r.snr_db is not None]
        req, outcome = lw_adr.uplink(
            region,
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
