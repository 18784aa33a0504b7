"""OTAA joins: a join-request becomes a new session staged with the batch and a join-accept
sent once the batch committed (LORAWAN.md 8). Used DevNonces and JoinNonces come from memory
(nonces.py), so a join never waits for SQLite on the event loop."""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway_agent.config import Config
from gateway_agent.ingest.downlinks import Downlinks
from gateway_agent.ingest.mac import Mac
from gateway_agent.ingest.nonces import JoinNonces
from gateway_agent.ingest.passive import Passive
from gateway_agent.ingest.sessions import SessionCache, joined
from gateway_agent.ingest.stage import Stage
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.lorawan import frame as lw_frame
from gateway_agent.lorawan import join as lw_join
from gateway_agent.lorawan import region as lw_region
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.metrics import Counters
from gateway_agent.store import Batch

log = logging.getLogger("gateway_agent.ingest")  # one logger name for the ingest's log lines


class Joins:
    def __init__(
        self,
        cfg: Config,
        nonces: JoinNonces,
        cache: SessionCache,
        stage: Stage,
        mac: Mac,
        downlinks: Downlinks,
        counters: Counters,
        limiter: RateLimitedLog,
        open_batches: Callable[[], list[Batch]],
        passive: Passive | None = None,
    ) -> None:
        self.cfg = cfg
        self.nonces = nonces
        self.cache = cache
        self.stage = stage
        self.mac = mac
        self.downlinks = downlinks
        self.counters = counters
        self.limiter = limiter
        self.open_batches = open_batches  # uncommitted joins count as used (DevNonce, JoinNonce)
        self.passive = passive

    def handle_join(self, jr: lw_frame.JoinRequest, group: FrameGroup) -> None:
        if self.cfg.lorawan.mode == "passive":
            self.heard_passive(jr)
            return
        dev = self.cache.by_join.get((jr.join_eui, jr.dev_eui))
        if dev is None or dev.app_key is None:
            self.counters.bad_input("unknown_device", kind="join")
            self.limiter.warn("join_rejected", reason="unknown_device", dev_eui=jr.dev_eui.hex())
            return
        lw = self.cfg.lorawan
        open_batches = self.open_batches()
        used = self.nonces.used_by(dev.dev_eui, open_batches)
        join_nonce = self.nonces.next_join_nonce(dev.dev_eui, open_batches)
        dev_addr = lw_join.allocate_dev_addr(
            lw.dev_addr_prefix,
            set(self.cache.by_addr),
            seed=int.from_bytes(dev.dev_eui, "big") + join_nonce,
        )
        region = lw_region.REGIONS[lw.region]
        res = lw_join.handle_join_request(
            jr,
            dev.app_key.reveal_bytes(),
            used,
            join_nonce,
            lw.net_id,
            dev_addr,
            dl_settings=(lw.rx1_dr_offset << 4) | lw_region.rx2_window(region, rx2_dr=lw.rx2_dr)[1],
            rx_delay=lw.rx1_delay_s,
            cflist=lw_join.cflist_eu868(region.extra_channels_hz),
        )
        if isinstance(res, lw_join.JoinRejected):
            self.counters.bad_input(f"join_{res.reason}")
            self.limiter.warn(
                "join_rejected", reason=res.reason, dev_eui=jr.dev_eui.hex(), dev_nonce=jr.dev_nonce
            )
            return
        eui = dev.dev_eui.hex()
        self.stage.join(
            dev.dev_eui, jr.dev_nonce, res.dev_addr, res.nwk_s_key, res.app_s_key, join_nonce
        )
        self.cache.set_session(joined(dev.dev_eui, res.dev_addr, res.nwk_s_key, res.app_s_key))
        self.counters.inc("joins_accepted")
        log_event(
            log,
            logging.INFO,
            "join_accepted",
            dev_eui=eui,
            dev_addr=res.dev_addr.hex(),
            dev_nonce=jr.dev_nonce,
        )
        self.stage.event("device_joined", {"devEui": eui, "devAddr": res.dev_addr.hex()})
        self.mac.forget(jr.dev_eui)
        rx = self.downlinks.route(group)
        if rx is None:
            self.counters.inc("downlink_no_route", purpose="join_accept")
            return
        tx = lw_region.join_accept_windows(
            region, rx, res.join_accept, power_dbm=lw.downlink_power_dbm
        )
        self.stage.downlink(tx, None)

    def heard_passive(self, jr: lw_frame.JoinRequest) -> None:
        """Passive mode: the central server answers joins. Nothing is stored: no DevNonce (the
        central server keeps those; one recorded here would refuse its later sessions if this
        agent ever answered again), no session. The device's new session is asked for once
        the central server has had time to accept it."""
        known = (jr.join_eui, jr.dev_eui) in self.cache.by_join
        self.counters.inc("joins_heard", mode="passive", device="known" if known else "unknown")
        if not known:
            return  # another network's device, or one this agent has no row for
        log_event(log, logging.INFO, "join_heard", dev_eui=jr.dev_eui.hex(), mode="passive")
        if self.passive is not None:
            self.passive.join_heard(jr.dev_eui)
