"""GWMP server: the agent side of the Semtech UDP packet forwarder, uplinks and downlinks.

Wire format lives in gwmp_wire.py; this module owns sockets, routes and per-gateway figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway_agent.config import GwmpSourceConfig
from gateway_agent.errors import BadInput, FrameError
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.lorawan.frozen import fast_constructor
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.metrics import Counters
from gateway_agent.sources import Source, source_type
from gateway_agent.sources.gwmp_wire import (
    PLACEHOLDER_EUI,
    PUSH_DATA,
    PullData,
    PushData,
    TxAck,
    parse_datagram,
    parse_header,
    parse_rxpk,
    parse_stat,
    pull_ack,
    pull_resp,
    push_ack,
)

log = logging.getLogger(__name__)
_new_frame = fast_constructor(RadioFrame)  # parse_rxpk hands out bytes: no re-check

# Section 1 asks for a 65535-byte read buffer (up to 255 rxpk per PUSH_DATA): a UDP datagram
# cannot be larger, so none is ever truncated.
RECV_BYTES = 65536
READ_BURST = 64  # datagrams read per wake-up before the loop runs other tasks again
PENDING_TTL_S = 5.0  # TX_ACK comes within milliseconds; older tokens are forgotten (section 6)
RCVBUF_BYTES = 4 * 1024 * 1024  # capped by net.core.rmem_max
MAX_GATEWAYS = 1024  # a flood of invented EUIs must not grow memory without bound
FLAP_WINDOW_S = 120.0  # route changes back and forth within this window -> shared EUI
FLAP_WARN = 3  # this many alternations before warning


@dataclass(slots=True)
class Route:
    addr: tuple[str, int]
    version: int
    mono: float
    wall: float
    transport: int  # index into the listen addresses: answer from the socket it came in on


@dataclass(slots=True)
class GatewayState:
    """Mutable per-gateway figures (section 3 "Per gateway keep")."""

    version: int
    first_seen: float
    last_seen: float = 0.0  # wall epoch seconds
    last_pull: float | None = None
    stat: dict[str, Any] | None = None
    stat_at: float | None = None
    rx_ok: int = 0
    rx_bad: int = 0
    tx_sent: int = 0
    tx_ok: int = 0
    tx_failed: int = 0
    tx_errors: dict[str, int] | None = None
    route: Route | None = None
    prev_addr: tuple[str, int] | None = None
    flaps: int = 0
    last_flap: float = 0.0
    last_seen_mono: float = 0.0

    def as_dict(self, now_mono: float, stale_s: float) -> dict[str, Any]:
        r = self.route
        return {
            "protocol_version": self.version,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "last_pull_data": self.last_pull,
            "route": f"{r.addr[0]}:{r.addr[1]}" if r else None,
            "route_fresh": bool(r and now_mono - r.mono <= stale_s),
            "rx_ok": self.rx_ok,
            "rx_bad": self.rx_bad,
            "tx_sent": self.tx_sent,
            "tx_ok": self.tx_ok,
            "tx_failed": self.tx_failed,
            "tx_errors": dict(self.tx_errors or {}),
            "stat": self.stat,
            "stat_at": self.stat_at,
            "shared_eui_suspected": self.flaps >= FLAP_WARN,
        }


class _Endpoint:
    """One bound UDP socket, read straight from the event loop's selector: every datagram
    waiting is read in one wake-up (up to READ_BURST), so a burst from a busy forwarder costs
    one loop round instead of one per datagram (asyncio's datagram transport reads one)."""

    def __init__(self, owner: GwmpSource, index: int, sock: socket.socket) -> None:
        self.owner = owner
        self.index = index
        self.sock: socket.socket | None = sock
        self._recv = sock.recvfrom
        self._sendto = sock.sendto

    def on_readable(self) -> None:
        handle, index, recv = self.owner.on_datagram, self.index, self._recv
        for _ in range(READ_BURST):
            try:
                data, addr = recv(RECV_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # A pending socket error (Linux reports ICMP errors only to connected sockets or
                # with IP_RECVERR, neither of which this is): counted, and the read goes on.
                self.owner.counters.inc("gwmp_socket_error", source=self.owner.name)
                continue
            handle(index, data, addr)

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.sock is None:
            return
        try:
            self._sendto(data, addr)
        except (BlockingIOError, InterruptedError):  # send buffer full: UDP may drop, so do we
            self.owner.counters.inc("gwmp_send_dropped", source=self.owner.name)
        except OSError:
            self.owner.counters.inc("gwmp_socket_error", source=self.owner.name)

    def close(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.sock is not None:
            loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None


async def _bind_udp(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to host:port (IPv4 or IPv6, as the host resolves)."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP)
    err: OSError | None = None
    for family, type_, proto, _, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):  # absorb bursts (several forwarders, floods)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            sock.bind(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            err = e
    raise err or OSError(f"cannot resolve {host}:{port}")


class GwmpSource:
    """Implements `Source` for one or more UDP listen addresses."""

    def __init__(
        self,
        cfg: GwmpSourceConfig,
        counters: Counters,
        *,
        mono: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        host, port = cfg.listen[0]
        self.cfg = cfg
        self.name = cfg.name or f"gwmp:{host}:{port}"
        self.counters = counters
        self._received_key = counters.key("frames_received", source=self.name)
        self._mono = mono
        self._wall = wall
        self._endpoints: list[_Endpoint] = []
        self._out: asyncio.Queue[RadioFrame] | None = None
        self._gw: OrderedDict[str, GatewayState] = OrderedDict()  # LRU: oldest first
        self._pending: dict[tuple[str, bytes], tuple[float, DownlinkTx]] = {}
        self._limiter = RateLimitedLog(log, 10.0)
        self.addresses: list[tuple[str, int]] = []  # bound addresses (port 0 resolved)
        self.ready = asyncio.Event()
        self.frames = 0
        self.unknown_tx_ack = 0
        # Told about every downlink a gateway refused (TX_ACK error): the ingest tries RX2.
        self.on_refused: Callable[[DownlinkTx, str], None] | None = None
        # Told every TX_ACK outcome of a downlink it sent: error string, None when accepted
        # (the relay's `event/ack`). Called before on_refused.
        self.on_tx_ack: Callable[[DownlinkTx, str | None], None] | None = None

    # ------------------------------------------------------------------ lifecycle

    async def run(self, out: asyncio.Queue[RadioFrame], stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self._out = out
        try:
            for i, (host, port) in enumerate(self.cfg.listen):
                sock = await _bind_udp(loop, host, port)
                ep = _Endpoint(self, i, sock)
                self._endpoints.append(ep)
                loop.add_reader(sock.fileno(), ep.on_readable)
                self.addresses.append(tuple(sock.getsockname()[:2]))
            log_event(
                log,
                logging.INFO,
                "gwmp_listening",
                source=self.name,
                listen=",".join(f"{h}:{p}" for h, p in self.addresses),
            )
            self.ready.set()
            await stop.wait()
        finally:
            for ep in self._endpoints:
                ep.close(loop)
            self._endpoints.clear()
            self._out = None

    # ------------------------------------------------------------------ receive path

    def on_datagram(self, index: int, data: bytes, addr: tuple[str, int]) -> None:
        """The per-datagram boundary: bad input is counted, a bug is logged; never raises."""
        try:
            self._handle(index, data, addr)
        except BadInput as e:
            self._bad(e.reason, addr=f"{addr[0]}:{addr[1]}")
        except Exception:
            self.counters.internal_error(f"source:{self.name}")
            self._limiter.exception("gwmp_internal_error", source=self.name)

    def _bad(self, reason: str, gw: GatewayState | None = None, **fields: Any) -> None:
        self.counters.bad_input(reason, source=self.name)
        if gw is not None:
            gw.rx_bad += 1
        if reason not in ("crc_bad", "crc_none"):  # normal on air; counters suffice
            self._limiter.warn("gwmp_bad_input", reason=reason, source=self.name, **fields)

    def _send(self, index: int, data: bytes, addr: tuple[str, int]) -> None:
        self._endpoints[index].sendto(data, addr)

    def _handle(self, index: int, data: bytes, addr: tuple[str, int]) -> None:
        h = parse_header(data)
        if h.type == PUSH_DATA:
            # Section 3: acknowledge before parsing the JSON, even if the body turns out bad.
            self._send(index, push_ack(h.version, h.token), addr)
        mono, wall = self._mono(), self._wall()
        gw = self._gateway(h.gateway_eui or "", h.version, mono, wall)
        try:
            msg = parse_datagram(data)
        except FrameError as e:
            self._bad(e.reason, gw, gateway=h.gateway_eui)
            return
        if isinstance(msg, PushData):
            self._on_push(msg, gw, mono, wall)
        elif isinstance(msg, PullData):
            self._send(index, pull_ack(msg.version, msg.token), addr)
            self._on_pull(msg, gw, index, addr, mono, wall)
        elif isinstance(msg, TxAck):
            self._on_tx_ack(msg, gw, mono)

    def _gateway(self, eui: str, version: int, mono: float, wall: float) -> GatewayState:
        gw = self._gw.get(eui)
        if gw is None:
            if len(self._gw) >= MAX_GATEWAYS:
                self._gw.popitem(last=False)  # O(1): a flood of made-up EUIs stays cheap
            gw = self._gw[eui] = GatewayState(version=version, first_seen=wall)
            if len(self._gw) <= 16:
                log_event(
                    log,
                    logging.INFO,
                    "gateway_seen",
                    source=self.name,
                    gateway=eui,
                    protocol_version=version,
                )
            else:  # many EUIs is either a big site or someone spraying the port: rate-limit
                self._limiter.warn(
                    "gateway_seen_many", source=self.name, gateway=eui, gateways=len(self._gw)
                )
        else:
            self._gw.move_to_end(eui)
            if eui == PLACEHOLDER_EUI:
                self._limiter.warn("gateway_placeholder_eui", source=self.name, gateway=eui)
        gw.version = version
        gw.last_seen = wall
        gw.last_seen_mono = mono
        return gw

    def _on_push(self, msg: PushData, gw: GatewayState, mono: float, wall: float) -> None:
        if msg.stat is not None:
            gw.stat = parse_stat(msg.stat).as_dict()
            gw.stat_at = wall
        emitted = 0
        for item in msg.rxpk:
            try:
                records = parse_rxpk(item, msg.gateway_eui, mono, wall, self.name)
            except FrameError as e:
                self._bad(e.reason, gw, gateway=msg.gateway_eui)
                continue
            gw.rx_ok += 1
            for rx, phy in records:
                emitted += self._emit(_new_frame(phy, rx))
        if emitted:
            self.frames += emitted
            self.counters.add(self._received_key, emitted)

    def _emit(self, frame: RadioFrame) -> int:
        out = self._out
        if out is None:
            return 0
        try:
            out.put_nowait(frame)
        except asyncio.QueueFull:
            # A UDP reader never blocks (STYLE 6): the next datagram matters as much as this one.
            self.counters.inc("frames_dropped", reason="queue_full", source=self.name)
            self._limiter.warn("frames_dropped", reason="queue_full", source=self.name)
            return 0
        return 1

    def _on_pull(
        self,
        msg: PullData,
        gw: GatewayState,
        index: int,
        addr: tuple[str, int],
        mono: float,
        wall: float,
    ) -> None:
        eui = msg.gateway_eui
        old = gw.route
        gw.route = Route(addr, msg.version, mono, wall, index)
        gw.last_pull = wall
        if old is None or old.addr == addr:
            return
        # Back to the address used before the last change -> alternating, not a NAT rebinding.
        if addr == gw.prev_addr and mono - gw.last_flap <= FLAP_WINDOW_S:
            gw.flaps += 1
        else:
            gw.flaps = 0
        gw.last_flap = mono
        gw.prev_addr = old.addr
        if gw.flaps >= FLAP_WARN:
            self._limiter.warn(
                "gateway_eui_shared",
                key=f"shared:{eui}",
                source=self.name,
                gateway=eui,
                addr_a=f"{addr[0]}:{addr[1]}",
                addr_b=f"{old.addr[0]}:{old.addr[1]}",
                placeholder=eui == PLACEHOLDER_EUI,
            )
            self.counters.inc("gateway_eui_shared", source=self.name)
        else:
            log_event(
                log,
                logging.INFO,
                "gateway_route_changed",
                source=self.name,
                gateway=eui,
                old=f"{old.addr[0]}:{old.addr[1]}",
                new=f"{addr[0]}:{addr[1]}",
            )

    def _on_tx_ack(self, msg: TxAck, gw: GatewayState, mono: float) -> None:
        self._expire(mono)
        pending = self._pending.pop((msg.gateway_eui, msg.token), None)
        if pending is None:
            self.unknown_tx_ack += 1
            self.counters.inc("tx_ack_unknown", source=self.name)
            return
        tx = pending[1]
        purpose = tx.purpose
        if self.on_tx_ack is not None:
            self.on_tx_ack(tx, None if msg.ok else msg.error or "UNKNOWN")
        if msg.ok:
            gw.tx_ok += 1
            self.counters.inc("downlink_tx", result="ok", source=self.name)
            if msg.warn:
                log_event(
                    log, logging.INFO, "downlink_tx_warn", gateway=msg.gateway_eui, warn=msg.warn
                )
            return
        err = msg.error or "UNKNOWN"
        gw.tx_failed += 1
        gw.tx_errors = gw.tx_errors or {}
        gw.tx_errors[err] = gw.tx_errors.get(err, 0) + 1
        self.counters.inc("downlink_tx", result="failed", error=err, source=self.name)
        self._limiter.warn(
            "downlink_tx_failed",
            key=f"txfail:{err}",
            source=self.name,
            gateway=msg.gateway_eui,
            error=err,
            purpose=purpose,
        )
        if self.on_refused is not None:
            self.on_refused(tx, err)

    def _expire(self, mono: float) -> None:
        old = [k for k, (t, _) in self._pending.items() if mono - t > PENDING_TTL_S]
        for k in old:
            del self._pending[k]
            self.counters.inc("tx_ack_missing", source=self.name)

    # ------------------------------------------------------------------ downlink path

    def _fresh_route(self, gateway_id: str) -> Route | None:
        gw = self._gw.get(gateway_id)
        r = gw.route if gw else None
        if r is None or self._mono() - r.mono > self.cfg.route_stale_s:
            return None
        if not self._endpoints or self._endpoints[r.transport].sock is None:
            return None
        return r

    def can_downlink(self, gateway_id: str) -> bool:
        return self.cfg.downlink and self._fresh_route(gateway_id) is not None

    def downlink_gateways(self) -> list[str]:
        """Gateways with a fresh downlink route right now."""
        return [eui for eui in self._gw if self.can_downlink(eui)]

    def last_route_seen(self, gateway_id: str) -> float | None:
        """Monotonic time (time.monotonic) of that gateway's latest PULL_DATA, None if never."""
        gw = self._gw.get(gateway_id)
        return gw.route.mono if gw and gw.route else None

    def send_downlink(self, tx: DownlinkTx) -> bool:
        """PULL_RESP to the latest PULL_DATA address, in that gateway's protocol version."""
        route = self._fresh_route(tx.gateway_id) if self.cfg.downlink else None
        if route is None:
            self.counters.inc("downlink_no_route", source=self.name)
            return False
        mono = self._mono()
        self._expire(mono)
        if route.version == 1:
            token = b"\x00\x00"  # v1: token unused and no TX_ACK will come
        else:
            token = os.urandom(2)
            while (tx.gateway_id, token) in self._pending:
                token = os.urandom(2)
            self._pending[(tx.gateway_id, token)] = (mono, tx)
        self._send(route.transport, pull_resp(route.version, token, tx), route.addr)
        gw = self._gw[tx.gateway_id]
        gw.tx_sent += 1
        self.counters.inc("downlink_sent", source=self.name, purpose=tx.purpose)
        log_event(
            log,
            logging.DEBUG,
            "downlink_sent",
            gateway=tx.gateway_id,
            token=token.hex(),
            tmst=tx.tmst,
            freq_hz=tx.freq_hz,
            purpose=tx.purpose,
        )
        return True

    # ------------------------------------------------------------------ figures

    def stats(self) -> dict[str, Any]:
        now = self._mono()
        self._expire(now)
        return {
            "type": "gwmp",
            "name": self.name,
            "listen": [f"{h}:{p}" for h, p in self.addresses],
            "frames": self.frames,
            "pending_downlinks": len(self._pending),
            "unknown_tx_ack": self.unknown_tx_ack,
            "gateways": {
                eui: gw.as_dict(now, self.cfg.route_stale_s) for eui, gw in self._gw.items()
            },
        }


@source_type("gwmp")
def make_gwmp_source(cfg: GwmpSourceConfig, counters: Counters) -> Source:
    return GwmpSource(cfg, counters)
