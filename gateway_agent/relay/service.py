"""`Relay`: what the daemon wires for `[relay]` (docs/relay.md).

- `encode` (on the ingest loop, every CRC-ok reception): the `UplinkFrame` for the relay lane;
- `worker`: an `OutputWorker` named "relay" draining that lane into `RelaySink` (QoS 1 on
  `{prefix}/gateway/{eui}/event/up`, a row leaves after its PUBACK); a join-request older than
  `join_window_s` is dropped, counted as `join_expired`;
- `run`: the MQTT connections (`link.py`), `state/conn` per radio gateway, `event/stats` every
  `stats_interval_s`, and `command/down` -> PULL_RESP -> TX_ACK -> `event/ack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from gateway_agent.config.outputs import RELAY_OUTPUT, RelayConfig
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.outputs.worker import Delivery, OutputDown, OutputWorker
from gateway_agent.relay import frames as fr
from gateway_agent.relay.downlinks import RelayDownlinks
from gateway_agent.relay.link import ERRORS, Link, Presence
from gateway_agent.store import QueueRow

log = logging.getLogger("gateway_agent.relay")
WINDOW = 512  # publishes in flight at least (the relay's rate is round trips x window)
BATCH = 2000  # rows per delivery
MAX_PRESENCE = 64  # presence connections (gateways) at most
MAX_GATEWAYS = 1024  # gateways tracked (a flood of invented EUIs must not grow memory)
QUIET_S = 5.0  # GWMP: no datagram this long and no fresh downlink route -> OFFLINE


@dataclass(slots=True)
class _Gateway:
    """What the relay knows of one radio gateway (by EUI)."""

    source_id: str  # the id the radio source uses (the EUI, or a serial source id)
    rx: int = 0  # frames relayed since the last stats
    per_freq: dict[int, int] = field(default_factory=dict)
    location: dict[str, float] | None = None
    prev: dict[str, int] = field(default_factory=dict)  # source counters at the last stats


class RelayWorker(OutputWorker):
    """The relay lane's worker; its status (`outbox status`) also says the relay's own state."""

    def __init__(self, relay: Relay, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.relay = relay

    def status(self) -> dict[str, Any]:
        return {**super().status(), "relay": self.relay.status()}


class RelaySink:
    """The relay lane's sink: publishes on the relay link's PUBACK window."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.idle = asyncio.Event()  # no delivery under way
        self.idle.set()

    async def open(self) -> None:
        link = self.relay.link
        if link.window is None:
            raise OutputDown(link.last_error or "not connected")

    async def deliver(self, rows: Sequence[QueueRow]) -> Delivery:
        link = self.relay.link
        win = link.window
        if win is None:
            raise OutputDown(link.last_error or "not connected")
        prefix, as_json = self.relay.prefix, self.relay.cfg.json
        out = Delivery(refused_reason="bad_body")
        win.acked.clear()
        self.idle.clear()
        try:
            for r in rows:
                while win.full():
                    await win.wait(1.0)
                eui = r.msg_id.partition(":")[0]
                try:
                    body = fr.body_for_publish(r.body, as_json)
                except (DecodeError, TypeError, ValueError):
                    out.refused.append(r.seq)
                    continue
                win.publish([r.seq], f"{prefix}/gateway/{eui}/event/up", body)
            while win.pending:
                await win.wait(1.0)
        except ERRORS as e:
            link.last_error = str(e) or type(e).__name__
        finally:
            self.idle.set()
        out.done = list(win.acked)
        win.acked.clear()
        return out

    async def close(self) -> None:
        return None


class Relay:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        cfg: RelayConfig = daemon.cfg.relay
        self.cfg = cfg
        self.prefix = cfg.topic_prefix
        self.agent_id: str = daemon.cfg.agent.gateway_id
        self.mqtt = cfg.mqtt or daemon.cfg.upstream
        base = self.mqtt.client_id if cfg.mqtt is not None and self.mqtt.client_id else ""
        self.client_id = base or f"gateway-agent-{self.agent_id}-relay"
        self.counters = daemon.counters
        self.link = Link(
            self.mqtt,
            self.client_id,
            f"{self.prefix}/gateway/+/command/down",
            lambda topic, payload: self.downlinks.on_command(topic, payload),
            self.counters,
            max(self.mqtt.inflight, WINDOW),
        )
        self.sink = RelaySink(self)
        self.worker = RelayWorker(
            self,
            RELAY_OUTPUT,
            self.sink,
            daemon.store,
            daemon.st.call,
            self.counters,
            batch_max=BATCH,
            backoff=(min(0.2, self.mqtt.backoff_initial_s), self.mqtt.backoff_max_s),
            kind="relay",
        )
        self.worker.stale = self.stale
        self.gateways: dict[str, _Gateway] = {}
        self._eui: dict[str, str] = {}  # source gateway id -> EUI
        self.presence: dict[str, Presence] = {}
        self._presence_tasks: dict[str, asyncio.Task[None]] = {}
        self.downlinks = RelayDownlinks(self)
        self._limit = RateLimitedLog(log, window_s=10.0)
        self._heard = asyncio.Event()

    # -- uplinks (ingest loop) ------------------------------------------------------------

    def eui_of(self, source_id: str) -> str:
        eui = self._eui.get(source_id)
        if eui is None:
            if len(self._eui) >= 4 * MAX_GATEWAYS:
                self._eui.clear()
            eui = self._eui[source_id] = fr.gateway_eui(source_id, self.agent_id)
            if eui != source_id:
                log_event(log, logging.INFO, "relay_pseudo_eui", gateway=source_id, eui=eui)
        return eui

    def _gateway(self, eui: str, source_id: str) -> _Gateway:
        g = self.gateways.get(eui)
        if g is None:
            if len(self.gateways) >= MAX_GATEWAYS:  # the longest known goes (and its presence)
                old = next(iter(self.gateways))
                del self.gateways[old]
                p = self.presence.pop(old, None)
                if p is not None:
                    p.gone.set()
            g = self.gateways[eui] = _Gateway(source_id)
            self._heard.set()
        return g

    def encode(self, frame: RadioFrame) -> tuple[str, str, bytes, float] | None:
        rx = frame.rx
        eui = self._eui.get(rx.gateway_id) or self.eui_of(rx.gateway_id)
        g = self.gateways.get(eui) or self._gateway(eui, rx.gateway_id)
        g.rx += 1
        g.per_freq[rx.freq_hz] = g.per_freq.get(rx.freq_hz, 0) + 1
        phy = frame.phy_payload
        up = fr.uplink_frame(frame, eui, g.location)
        kind = fr.KIND_JOIN if fr.join_request(phy) else fr.KIND_UP
        return kind, fr.msg_id(eui, rx, phy), up.SerializeToString(), rx.rx_wall

    def stale(self, rows: Sequence[QueueRow]) -> tuple[list[int], str]:
        """A join-request heard longer ago than its join window is never relayed late."""
        limit = time.time() - self.cfg.join_window_s
        return [r.seq for r in rows if r.kind == fr.KIND_JOIN and r.created < limit], (
            "join_expired"
        )

    # -- run ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        for src in self.d.sources:
            if hasattr(src, "on_tx_ack"):
                src.on_tx_ack = self.downlinks.on_tx_ack
                src.on_refused = self._refused_filter(src.on_refused)
        self.link.on_up = self._on_up
        self.link.before_close = self._before_close
        log_event(
            log,
            logging.INFO,
            "relay_started",
            kind=self.cfg.kind,
            topic_prefix=self.prefix,
            json=self.cfg.json,
            host=self.mqtt.host,
            port=self.mqtt.port,
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(stop), name="relay:link")
            tg.create_task(self._tick(stop, tg), name="relay:tick")

    def _refused_filter(self, prev: Any) -> Any:
        def refused(tx: DownlinkTx, error: str) -> None:
            if tx.purpose != "relay" and prev is not None:  # the ingest's own: RX2 retry
                prev(tx, error)

        return refused

    async def _on_up(self) -> None:
        self.worker.retry_now()  # the lane's worker need not wait out its backoff

    async def _before_close(self) -> None:
        """A clean stop: the delivery under way gets its PUBACKs (a short while)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sink.idle.wait(), 3.0)

    async def _tick(self, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        next_stats = time.monotonic() + self.cfg.stats_interval_s
        while not stop.is_set():
            self._heard.clear()
            self._presences(self._discover(), stop, tg)
            self.downlinks.expire()
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.cfg.stats_interval_s
                self.publish_stats()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._heard.wait())]
            try:
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

    def _presences(
        self, srcs: dict[str, dict[str, Any]], stop: asyncio.Event, tg: asyncio.TaskGroup
    ) -> None:
        """ONLINE for each gateway heard; OFFLINE for one gone quiet (GWMP: no fresh downlink
        route and no datagram for QUIET_S; serial: the modem is disconnected)."""
        now = time.time()
        for eui, g in self.gateways.items():
            st = srcs.get(g.source_id, {})
            seen = st.get("last_seen")
            quiet = (
                "route_fresh" in st
                and not st["route_fresh"]
                and seen is not None
                and now - seen > QUIET_S
            ) or st.get("connected") is False
            p, task = self.presence.get(eui), self._presence_tasks.get(eui)
            if quiet and p is not None:
                p.gone.set()
                del self.presence[eui]
                log_event(log, logging.INFO, "relay_gateway_offline", gateway=eui)
            elif not quiet and p is None and (task is None or task.done()):
                if len(self.presence) >= MAX_PRESENCE:
                    self._limit.warn("relay_presence_full", key="full", gateway=eui)
                    continue
                p = self.presence[eui] = self._presence(eui)
                self._presence_tasks[eui] = tg.create_task(
                    p.run(stop), name=f"relay:presence:{eui}"
                )

    def _presence(self, eui: str) -> Presence:
        topic = f"{self.prefix}/gateway/{eui}/state/conn"
        return Presence(
            self.mqtt,
            f"{self.client_id}-{eui}",
            topic,
            fr.serialize(fr.conn_state(eui, True), self.cfg.json),
            fr.serialize(fr.conn_state(eui, False), self.cfg.json),
            self.counters,
        )

    def source_gateways(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for src in self.d.sources:
            try:
                gws = src.stats().get("gateways", {})
            except Exception:  # a source's figures must not stop the relay
                self.counters.internal_error("relay_stats")
                continue
            for gid, st in gws.items():
                if gid:
                    out[gid] = st
        return out

    def _discover(self) -> dict[str, dict[str, Any]]:
        """Gateways a source knows (a PULL_DATA, a stat) but no frame came from yet; positions
        from the GWMP stat objects. Returns the sources' per-gateway figures."""
        srcs = self.source_gateways()
        for gid, st in srcs.items():
            g = self._gateway(self.eui_of(gid), gid)
            stat = st.get("stat") or {}
            if "lati" in stat and "long" in stat:
                g.location = {k: float(stat[k]) for k in ("lati", "long", "alti") if k in stat}
        return srcs

    def publish_stats(self) -> None:
        """GatewayStats per radio gateway, live (stats are not data: never queued)."""
        now = time.time()
        srcs = self.source_gateways()
        for eui, g in self.gateways.items():
            st = srcs.get(g.source_id, {})
            cur = {k: int(st.get(k) or 0) for k in ("rx_ok", "rx_bad", "tx_sent", "tx_ok")}
            delta = {k: max(0, v - g.prev.get(k, 0)) for k, v in cur.items()}
            g.prev = cur
            tx_status = {"OK": delta["tx_ok"]} if delta["tx_ok"] else {}
            stats = fr.gateway_stats(
                eui,
                now,
                rx_received=g.rx + delta["rx_bad"],
                rx_ok=g.rx,
                tx_received=delta["tx_sent"],
                tx_emitted=delta["tx_ok"],
                stat=st.get("stat"),
                per_freq=g.per_freq,
                tx_status=tx_status,
            )
            g.rx, g.per_freq = 0, {}
            topic = f"{self.prefix}/gateway/{eui}/event/stats"
            if self.link.publish_now(topic, fr.serialize(stats, self.cfg.json)):
                self.counters.inc("relay_stats_published")

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.link.window is not None,
            "last_error": self.link.last_error,
            "gateways_known": len(self.gateways),
            "gateways": sorted(self.gateways)[:64],
            "presence_online": sorted(e for e, p in self.presence.items() if p.connected),
            "pending_downlinks": len(self.downlinks.pending),
            "acks": self.downlinks.acks,
        }
