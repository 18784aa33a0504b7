"""A Semtech packet-forwarder emulator (GWMP.md): the gateway side, over two connected UDP sockets
on loopback, with a free-running 32-bit tmst counter, PUSH_DATA/stat, PULL_DATA keep-alives and
PULL_RESP -> TX_ACK (TOO_LATE when the tmst has passed), handing downlinks on at their tmst."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = range(6)
MIN_LEAD_US = 30_000  # lora_pkt_fwd's JIT queue needs the packet some tens of ms ahead
MAX_LEAD_US = 10_000_000  # further ahead than this: TOO_EARLY (class A needs at most ~6 s)


@dataclass(frozen=True, slots=True)
class RxMeta:
    freq_hz: int
    sf: int
    bw_khz: int
    rssi_dbm: int
    snr_db: float
    chan: int = 0
    rfch: int = 0


@dataclass(frozen=True, slots=True)
class Downlink:
    """A txpk the gateway put on air (at its tmst), for the channel to hand to the devices."""

    gateway_eui: bytes
    phy: bytes
    freq_hz: int
    datr: str
    tmst: int | None
    ipol: bool
    token: bytes


@dataclass(slots=True)
class ForwarderStats:
    push_sent: int = 0
    push_acked: int = 0
    rxpk_sent: int = 0
    pull_sent: int = 0
    pull_acked: int = 0
    pull_resp: int = 0
    tx_ok: int = 0
    tx_too_late: int = 0
    tx_too_early: int = 0
    tx_bad: int = 0  # unparseable txpk, size mismatch, no ipol
    delivered: int = 0
    stray: int = 0  # replies we did not expect (wrong version, unknown token, garbage)


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes], None]) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.on_datagram(data)

    def error_received(self, exc: Exception) -> None:  # ICMP refused while the agent is down
        pass


def _signed32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


class PacketForwarder:
    """One gateway. `on_downlink` gets every txpk the gateway transmits, at its tmst."""

    def __init__(
        self,
        eui: bytes,
        server: tuple[str, int],
        *,
        version: int = 2,
        keepalive_s: float = 10.0,
        stat_interval_s: float = 30.0,
        tmst_start: int | None = None,
        on_downlink: Callable[[Downlink], None] | None = None,
        gps_time: bool = True,
    ) -> None:
        if len(eui) != 8 or version not in (1, 2):
            raise ValueError("an 8-byte EUI and protocol version 1 or 2")
        self.eui = eui
        self.server = server
        self.version = version
        self.keepalive_s = keepalive_s
        self.stat_interval_s = stat_interval_s
        self.on_downlink = on_downlink
        self.gps_time = gps_time
        start = tmst_start if tmst_start is not None else int.from_bytes(os.urandom(4), "big")
        self._tmst_base = start - int(time.monotonic() * 1e6)
        self.up: asyncio.DatagramTransport | None = None
        self.down: asyncio.DatagramTransport | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.pending_push: dict[bytes, int] = {}  # token -> push sequence number
        self._tok = int.from_bytes(os.urandom(2), "big")
        self.push_seq = 0
        self.acked_seqs: set[int] = set()
        self.pending_pull: dict[bytes, float] = {}
        self.interval = {
            "rxnb": 0,
            "rxok": 0,
            "rxfw": 0,
            "dwnb": 0,
            "txnb": 0,
            "acked": 0,
            "sent": 0,
        }
        self.stats = ForwarderStats()
        self.connected = False

    # -- clocks ---------------------------------------------------------------------------

    def tmst_now(self) -> int:
        """Free-running concentrator counter, µs, wraps every 2^32 µs (~71.6 min)."""
        return (self._tmst_base + int(time.monotonic() * 1e6)) & 0xFFFFFFFF

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # Two sockets, two source ports, both "connected" to the server like lora_pkt_fwd.
        self.up, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self._on_up), remote_addr=self.server
        )
        self.down, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self._on_down), remote_addr=self.server
        )
        self.connected = True
        self.tasks = [
            asyncio.create_task(self._keepalive(), name=f"pull:{self.eui.hex()}"),
            asyncio.create_task(self._stat_loop(), name=f"stat:{self.eui.hex()}"),
        ]

    async def close(self) -> None:
        """Stop like a forwarder that lost its backhaul or was stopped: sockets gone."""
        self.connected = False
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        self.tasks = []
        for tr in (self.up, self.down):
            if tr is not None:
                tr.close()
        self.up = self.down = None

    async def restart(self) -> None:
        await self.close()
        await self.start()

    @property
    def ports(self) -> tuple[int, int]:
        assert self.up is not None and self.down is not None
        return self.up.get_extra_info("sockname")[1], self.down.get_extra_info("sockname")[1]

    # -- uplink ---------------------------------------------------------------------------

    def rxpk(self, phy: bytes, meta: RxMeta, tmst: int | None = None) -> dict[str, Any]:
        pk: dict[str, Any] = {}
        if self.gps_time:
            pk["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        pk.update(
            tmst=self.tmst_now() if tmst is None else tmst,
            chan=meta.chan,
            rfch=meta.rfch,
            freq=round(meta.freq_hz / 1e6, 6),
            stat=1,
            modu="LORA",
            datr=f"SF{meta.sf}BW{meta.bw_khz}",
            codr="4/5",
            rssi=meta.rssi_dbm,
            lsnr=meta.snr_db,
            size=len(phy),
            data=base64.b64encode(phy).decode("ascii"),
        )
        return pk

    def _token(self) -> bytes:
        # Sequential, skipping tokens still awaiting their ACK: with thousands of datagrams in
        # flight under load, a reused random token would credit one datagram with another's ACK.
        for _ in range(0x10000):
            self._tok = (self._tok + 1) & 0xFFFF
            tok = self._tok.to_bytes(2, "big")
            if tok not in self.pending_push and tok not in self.pending_pull:
                return tok
        self.pending_push.clear()  # 65536 unacknowledged: they are not coming back
        return self._tok.to_bytes(2, "big")

    def push(self, rxpks: list[dict[str, Any]], stat: dict[str, Any] | None = None) -> int | None:
        """Send one PUSH_DATA; returns its sequence number (None when disconnected), which is
        in `acked_seqs` once its PUSH_ACK came back."""
        if not self.connected or self.up is None:
            return None
        body: dict[str, Any] = {}
        if rxpks:
            body["rxpk"] = rxpks
        if stat is not None:
            body["stat"] = stat
        tok = self._token()
        self.up.sendto(
            bytes([self.version])
            + tok
            + bytes([PUSH_DATA])
            + self.eui
            + json.dumps(body, separators=(",", ":")).encode()
        )
        self.push_seq += 1
        self.pending_push[tok] = self.push_seq
        self.stats.push_sent += 1
        self.stats.rxpk_sent += len(rxpks)
        n = len(rxpks)
        for k in ("rxnb", "rxok", "rxfw"):
            self.interval[k] += n
        self.interval["sent"] += 1
        return self.push_seq

    def send_raw_up(self, data: bytes) -> None:
        """Anything at all from the uplink socket (garbage injector, replay attacker)."""
        if self.up is not None:
            self.up.sendto(data)

    def stat_object(self) -> dict[str, Any]:
        iv = self.interval
        ackr = 100.0 * iv["acked"] / iv["sent"] if iv["sent"] else 0.0
        obj = {
            "time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S GMT"),
            "rxnb": iv["rxnb"],
            "rxok": iv["rxok"],
            "rxfw": iv["rxfw"],
            "ackr": round(ackr, 1),
            "dwnb": iv["dwnb"],
            "txnb": iv["txnb"],
            "temp": 31.5,
        }
        for k in iv:
            iv[k] = 0  # stat counters cover the last interval only (GWMP.md 4.2)
        return obj

    async def _stat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stat_interval_s)
            self.push([], self.stat_object())

    async def _keepalive(self) -> None:
        while True:
            self.pull()
            await asyncio.sleep(self.keepalive_s)

    def pull(self) -> None:
        if self.down is None:
            return
        tok = self._token()
        self.down.sendto(bytes([self.version]) + tok + bytes([PULL_DATA]) + self.eui)
        self.pending_pull[tok] = time.monotonic()
        self.stats.pull_sent += 1

    # -- replies ----------------------------------------------------------------------------

    def _on_up(self, data: bytes) -> None:
        if len(data) == 4 and data[0] == self.version and data[3] == PUSH_ACK:
            seq = self.pending_push.pop(data[1:3], None)
            if seq is None:
                self.stats.stray += 1
                return
            self.acked_seqs.add(seq)
            self.stats.push_acked += 1
            self.interval["acked"] += 1
            return
        self.stats.stray += 1

    def _on_down(self, data: bytes) -> None:
        if len(data) < 4 or data[0] != self.version:
            self.stats.stray += 1  # lora_pkt_fwd ignores other versions silently
            return
        if (
            data[3] == PULL_ACK
            and len(data) == 4
            and self.pending_pull.pop(data[1:3], None) is not None
        ):
            self.stats.pull_acked += 1
            return
        if data[3] == PULL_RESP:
            self.stats.pull_resp += 1
            self.interval["dwnb"] += 1
            self._on_pull_resp(data[1:3], data[4:])
            return
        self.stats.stray += 1

    def _tx_ack(self, token: bytes, error: str | None) -> None:
        if self.version == 1 or self.down is None:
            return  # v1 forwarders never send TX_ACK
        body = json.dumps({"txpk_ack": {"error": error or "NONE"}}, separators=(",", ":")).encode()
        self.down.sendto(bytes([self.version]) + token + bytes([TX_ACK]) + self.eui + body)

    def _on_pull_resp(self, token: bytes, body: bytes) -> None:
        try:
            txpk = json.loads(body)["txpk"]
            phy = base64.b64decode(txpk["data"], validate=True)
            if int(txpk["size"]) != len(phy):
                raise ValueError("size mismatch")
            freq_hz = round(float(txpk["freq"]) * 1e6)
            datr = str(txpk["datr"])
            imme = bool(txpk.get("imme", False))
            tmst = None if imme else int(txpk["tmst"]) & 0xFFFFFFFF
        except (ValueError, KeyError, TypeError):
            self.stats.tx_bad += 1
            self._tx_ack(token, "TX_FREQ")  # closest error code for a txpk it cannot use
            return
        lead_us = 0 if tmst is None else _signed32(tmst - self.tmst_now())
        if tmst is not None and lead_us < MIN_LEAD_US:
            self.stats.tx_too_late += 1
            self._tx_ack(token, "TOO_LATE")
            return
        if lead_us > MAX_LEAD_US:
            self.stats.tx_too_early += 1
            self._tx_ack(token, "TOO_EARLY")
            return
        self.stats.tx_ok += 1
        self._tx_ack(token, None)
        dl = Downlink(self.eui, phy, freq_hz, datr, tmst, bool(txpk.get("ipol", False)), token)
        asyncio.get_running_loop().call_later(lead_us / 1e6, self._emit, dl)

    def _emit(self, dl: Downlink) -> None:
        self.interval["txnb"] += 1
        if not dl.ipol:
            self.stats.tx_bad += 1  # non-inverted IQ: no LoRaWAN device can hear it
            return
        self.stats.delivered += 1
        if self.on_downlink is not None:
            self.on_downlink(dl)
