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

from chirpstack_api import gw
from google.protobuf.message import DecodeError

from gateway_agent.config.outputs import RELAY_OUTPUT, RelayConfig
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.outputs.worker import Delivery, OutputDown, OutputWorker
from gateway_agent.relay import frames as fr
from gateway_agent.relay.link import ERRORS, Link, Presence
from gateway_agent.store import QueueRow

log = logging.getLogger("gateway_agent.relay")
WINDOW = 512  # publishes in flight at least (the relay's rate is round trips x window)
BATCH = 2000  # rows per delivery
MAX_PRESENCE = 64  # presence connections (gateways) at most
TX_ACK_WAIT_S = 6.0  # a sent downlink's TX_ACK is forgotten after this (GWMP.md section 6)


@dataclass(slots=True)
class _Gateway:
    """What the relay knows of one radio gateway (by EUI)."""

    source_id: str  # the id the radio source uses (the EUI, or a serial source id)
    rx: int = 0  # frames relayed since the last stats
    per_freq: dict[int, int] = field(default_factory=dict)
    location: dict[str, float] | None = None
    prev: dict[str, int] = field(default_factory=dict)  # source counters at the last stats


@dataclass(slots=True)
class _Down:
    """A `command/down` being tried item by item."""

    gateway_id: str
    downlink_id: int
    items: list[Any]
    statuses: list[int]
    index: int = 0
    sent_at: float = 0.0


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
            self.on_command,
            self.counters,
            max(self.mqtt.inflight, WINDOW),
        )
        self.sink = RelaySink(self)
        self.worker = OutputWorker(
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
        self.pending: dict[int, _Down] = {}
        self.acks = 0
        self._limit = RateLimitedLog(log, window_s=10.0)
        self._heard = asyncio.Event()

    # -- uplinks (ingest loop) ------------------------------------------------------------

    def eui_of(self, source_id: str) -> str:
        eui = self._eui.get(source_id)
        if eui is None:
            eui = self._eui[source_id] = fr.gateway_eui(source_id, self.agent_id)
            if eui != source_id:
                log_event(log, logging.INFO, "relay_pseudo_eui", gateway=source_id, eui=eui)
        return eui

    def _gateway(self, eui: str, source_id: str) -> _Gateway:
        g = self.gateways.get(eui)
        if g is None:
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
                src.on_tx_ack = self.on_tx_ack
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
            self._discover()
            for eui in list(self.gateways):
                if eui not in self.presence and len(self.presence) < MAX_PRESENCE:
                    p = self.presence[eui] = self._presence(eui)
                    tg.create_task(p.run(stop), name=f"relay:presence:{eui}")
            self._expire_pending()
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.cfg.stats_interval_s
                self.publish_stats()
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._heard.wait())]
            try:
                await asyncio.wait(waits, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()

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

    def _source_gateways(self) -> dict[str, dict[str, Any]]:
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

    def _discover(self) -> None:
        """Gateways a source knows (a PULL_DATA, a stat) but no frame came from yet."""
        for gid, st in self._source_gateways().items():
            g = self._gateway(self.eui_of(gid), gid)
            stat = st.get("stat") or {}
            if "lati" in stat and "long" in stat:
                g.location = {k: float(stat[k]) for k in ("lati", "long", "alti") if k in stat}

    def publish_stats(self) -> None:
        """GatewayStats per radio gateway, live (stats are not data: never queued)."""
        now = time.time()
        srcs = self._source_gateways()
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

    # -- downlinks ------------------------------------------------------------------------

    def on_command(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or parts[-1] != "down" or parts[-2] != "command":
            return
        try:
            down = fr.parse_downlink(payload, self.cfg.json)
        except fr.DownlinkRefused as e:
            self.counters.bad_input("relay_bad_downlink")
            self._limit.warn("relay_bad_downlink", key="bad", reason=e.reason)
            return
        gid = (down.gateway_id or parts[-3]).lower()
        items = list(down.items)
        self.counters.inc("relay_downlinks")
        state = _Down(gid, down.downlink_id, items, [gw.IGNORED] * len(items))
        self._try(state)

    def _try(self, state: _Down) -> None:
        """Send the next item that can be sent; when none is left, the ack says why."""
        while state.index < len(state.items):
            i = state.index
            try:
                tx = fr.downlink_tx(state.gateway_id, state.downlink_id, i, state.items[i])
                if not fr.is_eui(state.gateway_id) or not self.d.can_downlink(state.gateway_id):
                    raise fr.DownlinkRefused("no route to that gateway")
                if not self.d.send_downlink(tx):
                    raise fr.DownlinkRefused("the gateway's source refused it")
            except fr.DownlinkRefused as e:
                state.statuses[i] = e.status
                self._limit.warn(
                    "relay_downlink_refused",
                    key=f"refused:{e.reason}",
                    gateway=state.gateway_id,
                    downlink_id=state.downlink_id,
                    item=i,
                    reason=e.reason,
                )
                state.index += 1
                continue
            state.sent_at = time.monotonic()
            if self._protocol_version(state.gateway_id) == 1:
                state.statuses[i] = gw.OK  # a v1 forwarder never answers: queued is all we know
                break
            self.pending[state.downlink_id] = state
            return
        self._ack(state)

    def _protocol_version(self, gid: str) -> int | None:
        st = self._source_gateways().get(gid, {})
        v = st.get("protocol_version")
        return v if isinstance(v, int) else None

    def on_tx_ack(self, tx: DownlinkTx, error: str | None) -> None:
        """A gateway's TX_ACK for a downlink (GwmpSource hook): OK, or the next item."""
        if tx.purpose != "relay":
            return
        try:
            extra = dict(tx.extra)
            state = self.pending.get(int(extra["downlink_id"]))
            if state is None or state.index != int(extra["item"]):
                return
            del self.pending[state.downlink_id]
            status = fr.ack_status(error)
            state.statuses[state.index] = status
            if status == gw.OK:
                self._ack(state)
                return
            state.index += 1
            self._try(state)
        except Exception:  # never into the UDP reader
            self.counters.internal_error("relay_tx_ack")
            self._limit.exception("relay_tx_ack_failed", key="txack")

    def _expire_pending(self) -> None:
        now = time.monotonic()
        for did, st in list(self.pending.items()):
            if now - st.sent_at > TX_ACK_WAIT_S:
                del self.pending[did]
                self.counters.inc("relay_tx_ack_missing")

    def _ack(self, state: _Down) -> None:
        ack = fr.tx_ack(state.gateway_id, state.downlink_id, state.statuses)
        topic = f"{self.prefix}/gateway/{state.gateway_id}/event/ack"
        sent = self.link.publish_now(topic, fr.serialize(ack, self.cfg.json))
        self.acks += 1
        last = next((s for s in reversed(state.statuses) if s != gw.IGNORED), gw.IGNORED)
        self.counters.inc("relay_acks", status=fr.status_name(last), sent=str(sent).lower())

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.link.window is not None,
            "last_error": self.link.last_error,
            "gateways": sorted(self.gateways),
            "presence_online": sorted(e for e, p in self.presence.items() if p.connected),
            "pending_downlinks": len(self.pending),
        }
