"""The relay's downlinks: ChirpStack's `command/down` -> a GWMP PULL_RESP through the gateway
named (item 0 first, the next item when one is refused, as ChirpStack's forwarders do) -> the
packet forwarder's TX_ACK -> `event/ack` (DownlinkTxAck with a status per item)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chirpstack_api import gw

from gateway_agent.logfmt import RateLimitedLog
from gateway_agent.lorawan.radio import DownlinkTx
from gateway_agent.relay import frames as fr

if TYPE_CHECKING:
    from gateway_agent.relay.service import Relay

log = logging.getLogger("gateway_agent.relay")
TX_ACK_WAIT_S = 6.0  # a sent downlink's TX_ACK is forgotten after this (GWMP.md section 6)


@dataclass(slots=True)
class _Down:
    """A `command/down` being tried item by item."""

    gateway_id: str
    downlink_id: int
    items: list[Any]
    statuses: list[int]
    index: int = 0
    sent_at: float = 0.0


class RelayDownlinks:
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.counters = relay.counters
        self.pending: dict[int, _Down] = {}
        self.acks = 0
        self._limit = RateLimitedLog(log, window_s=10.0)

    def on_command(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) < 4 or parts[-1] != "down" or parts[-2] != "command":
            return
        try:
            down = fr.parse_downlink(payload, self.relay.cfg.json)
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
                if not fr.is_eui(state.gateway_id) or not self.relay.d.can_downlink(
                    state.gateway_id
                ):
                    raise fr.DownlinkRefused("no route to that gateway")
                if not self.relay.d.send_downlink(tx):
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
        st = self.relay.source_gateways().get(gid, {})
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

    def expire(self) -> None:
        now = time.monotonic()
        for did, st in list(self.pending.items()):
            if now - st.sent_at > TX_ACK_WAIT_S:
                del self.pending[did]
                self.counters.inc("relay_tx_ack_missing")

    def _ack(self, state: _Down) -> None:
        ack = fr.tx_ack(state.gateway_id, state.downlink_id, state.statuses)
        topic = f"{self.relay.prefix}/gateway/{state.gateway_id}/event/ack"
        sent = self.relay.link.publish_now(topic, fr.serialize(ack, self.relay.cfg.json))
        self.acks += 1
        last = next((s for s in reversed(state.statuses) if s != gw.IGNORED), gw.IGNORED)
        self.counters.inc("relay_acks", status=fr.status_name(last), sent=str(sent).lower())
