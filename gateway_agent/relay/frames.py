"""ChirpStack's gateway messages (`chirpstack_api.gw`) from and to the agent's radio values: no IO.

Filled as ChirpStack's own forwarders fill them from a Semtech UDP packet forwarder
(chirpstack-gateway-bridge `semtechudp`): `rx_info.context` is the concentrator's `tmst` as 4
big-endian bytes, and a downlink with delay timing is sent at that `tmst` + the delay (µs).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
import zlib
from collections.abc import Mapping
from typing import Any

from chirpstack_api import gw
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame, RxInfo
from gateway_agent.relay.jsonmap import uplink_json

GPS_EPOCH_UNIX = 315_964_800  # 1980-01-06T00:00:00Z
CODE_RATES = {
    "4/5": gw.CR_4_5,
    "4/6": gw.CR_4_6,
    "4/7": gw.CR_4_7,
    "4/8": gw.CR_4_8,
    "2/6": gw.CR_2_6,
    "1/4": gw.CR_1_4,
    "1/6": gw.CR_1_6,
    "5/6": gw.CR_5_6,
    "3/8": gw.CR_3_8,
    "4/5LI": gw.CR_LI_4_5,
    "4/6LI": gw.CR_LI_4_6,
    "4/8LI": gw.CR_LI_4_8,
}
CODE_RATE_NAMES = {v: k for k, v in CODE_RATES.items()}
# TX_ACK `error` strings (protocols/GWMP.md section 6) -> ChirpStack's statuses; NONE is OK.
TX_ACK_STATUS = {
    "TOO_LATE": gw.TOO_LATE,
    "TOO_EARLY": gw.TOO_EARLY,
    "COLLISION_PACKET": gw.COLLISION_PACKET,
    "COLLISION_BEACON": gw.COLLISION_BEACON,
    "TX_FREQ": gw.TX_FREQ,
    "TX_POWER": gw.TX_POWER,
    "GPS_UNLOCKED": gw.GPS_UNLOCKED,
    "QUEUE_FULL": gw.QUEUE_FULL,
}
KIND_UP, KIND_JOIN = "relay_up", "relay_join"
_PSEUDO: dict[str, str] = {}
_ISO_Z = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z")
_DAYS: dict[str, int] = {}  # "YYYY-MM-DD" -> its midnight, Unix seconds


class DownlinkRefused(Exception):
    """A downlink item that cannot become a txpk; `status` is the ack's TxAckStatus."""

    def __init__(self, reason: str, status: int = gw.INTERNAL_ERROR) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def is_eui(s: str) -> bool:
    return len(s) == 16 and all(c in "0123456789abcdef" for c in s)


def gateway_eui(rx_gateway: str, agent_id: str) -> str:
    """The EUI ChirpStack knows the radio gateway by: a GWMP gateway's own EUI; for a serial
    modem (no EUI of its own) a stable pseudo-EUI, the first 8 bytes of SHA-256 over the
    agent's `gateway_id` and the source id (register it in ChirpStack like any gateway)."""
    if is_eui(rx_gateway):
        return rx_gateway
    key = f"{agent_id}/{rx_gateway}"
    eui = _PSEUDO.get(key)
    if eui is None:
        eui = _PSEUDO[key] = hashlib.sha256(key.encode()).hexdigest()[:16]
    return eui


def _seconds(d: Any, s: float) -> None:
    """Set a Timestamp/Duration message to `s` seconds (µs resolution)."""
    us = round(s * 1_000_000)
    d.seconds, d.nanos = us // 1_000_000, (us % 1_000_000) * 1000


def _gw_time(ts: Any, s: str, fallback: float) -> None:
    """The packet forwarder's `time` (ISO 8601 UTC, 6 or 9 decimals) into a Timestamp; the
    common form without strptime (20 us a frame), any other through protobuf's parser."""
    m = _ISO_Z.fullmatch(s)
    if m is not None:
        try:
            day = _DAYS.get(m[1])
            if day is None:
                day = int(dt.datetime.fromisoformat(m[1]).replace(tzinfo=dt.UTC).timestamp())
                if len(_DAYS) < 64:
                    _DAYS[m[1]] = day
            h, mi, sec = int(m[2]), int(m[3]), int(m[4])
            if h > 23 or mi > 59 or sec > 60:
                raise ValueError("time of day out of range")
            ts.seconds = day + h * 3600 + mi * 60 + sec
            ts.nanos = int((m[5] or "").ljust(9, "0")[:9])
            return
        except ValueError:
            pass
    try:
        ts.FromJsonString(s)
    except ValueError:
        _seconds(ts, fallback)


def msg_id(eui: str, rx: RxInfo, phy: bytes) -> str:
    """A stable id for one reception: the gateway, its receive time (ms) and the frame's CRC."""
    return f"{eui}:{int(rx.rx_wall * 1000)}:{zlib.crc32(phy):08x}"


def uplink_frame(
    frame: RadioFrame, eui: str, location: Mapping[str, float] | None = None
) -> gw.UplinkFrame:
    rx = frame.rx
    up = gw.UplinkFrame(phy_payload=frame.phy_payload)
    tx = up.tx_info
    tx.frequency = rx.freq_hz
    if rx.modulation == "LORA":
        lora = tx.modulation.lora
        lora.bandwidth = (rx.bw_khz or 0) * 1000
        lora.spreading_factor = rx.sf or 0
        lora.code_rate = CODE_RATES.get(rx.code_rate or "", gw.CR_UNDEFINED)
        lora.polarization_inversion = False
    else:
        tx.modulation.fsk.datarate = rx.bitrate or 0
    ri = up.rx_info
    ri.gateway_id = eui
    ri.uplink_id = random.getrandbits(32)  # as ChirpStack's forwarders do
    ri.crc_status = gw.CRC_OK
    if rx.gw_time:
        _gw_time(ri.gw_time, rx.gw_time, rx.rx_wall)
    else:
        _seconds(ri.gw_time, rx.rx_wall)  # when it was heard, also when relayed a day later
    if rx.tmms is not None:
        _seconds(ri.time_since_gps_epoch, rx.tmms / 1000)
    if rx.rssi_dbm is not None:
        ri.rssi = round(rx.rssi_dbm)
    if rx.snr_db is not None:
        ri.snr = rx.snr_db
    ri.channel = rx.channel or 0
    ri.rf_chain = rx.rf_chain or 0
    ri.board = rx.board or 0
    ri.antenna = rx.antenna or 0
    if rx.tmst is not None:
        ri.context = rx.tmst.to_bytes(4, "big")
    if location:
        _location(ri.location, location)
    return up


def _location(loc: Any, where: Mapping[str, float]) -> None:
    loc.latitude = where.get("lati", 0.0)
    loc.longitude = where.get("long", 0.0)
    loc.altitude = where.get("alti", 0.0)


def join_request(phy: bytes) -> bool:
    return bool(phy) and phy[0] >> 5 == 0


def body_for_publish(body: bytes | str, as_json: bool) -> bytes:
    """The lane holds protobuf bytes; with `json = true` the JSON mapping is made at publish."""
    if not isinstance(body, bytes):
        raise TypeError("a relay row's body is protobuf bytes")
    if not as_json:
        return body
    up = gw.UplinkFrame()
    up.ParseFromString(body)
    return uplink_json(up)


def to_json(m: Message) -> bytes:
    text: str = json_format.MessageToJson(m, indent=None)
    return text.encode()


def serialize(m: Message, as_json: bool) -> bytes:
    return to_json(m) if as_json else m.SerializeToString()


def conn_state(eui: str, online: bool) -> gw.ConnState:
    return gw.ConnState(
        gateway_id=eui, state=gw.ConnState.ONLINE if online else gw.ConnState.OFFLINE
    )


def gateway_stats(
    eui: str,
    now: float,
    *,
    rx_received: int,
    rx_ok: int,
    tx_received: int,
    tx_emitted: int,
    stat: Mapping[str, Any] | None = None,
    per_freq: Mapping[int, int] | None = None,
    tx_status: Mapping[str, int] | None = None,
) -> gw.GatewayStats:
    s = gw.GatewayStats(
        gateway_id=eui,
        rx_packets_received=rx_received,
        rx_packets_received_ok=rx_ok,
        tx_packets_received=tx_received,
        tx_packets_emitted=tx_emitted,
    )
    _seconds(s.time, now)
    if stat and "lati" in stat and "long" in stat:
        _location(s.location, stat)
    for k in ("rxnb", "rxok", "rxfw", "ackr", "dwnb", "txnb", "temp"):
        if stat and k in stat:
            s.metadata[f"pkt_fwd_{k}"] = str(stat[k])
    for f, n in (per_freq or {}).items():
        s.rx_packets_per_frequency[f] = n
    for st, n in (tx_status or {}).items():
        s.tx_packets_per_status[st] = n
    return s


# --------------------------------------------------------------------------- downlinks


def parse_downlink(payload: bytes, as_json: bool) -> gw.DownlinkFrame:
    """A `command/down` payload; raises DownlinkRefused when it is not a DownlinkFrame."""
    down = gw.DownlinkFrame()
    try:
        if as_json:
            json_format.Parse(payload.decode("utf-8"), down, ignore_unknown_fields=True)
        else:
            down.ParseFromString(payload)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, ValueError) as e:
        raise DownlinkRefused(f"not a DownlinkFrame: {str(e)[:80]}") from e
    return down


def _us(d: Any) -> int:
    return int(d.seconds) * 1_000_000 + int(d.nanos) // 1000


def downlink_tx(
    gateway_id: str, downlink_id: int, index: int, item: gw.DownlinkFrameItem
) -> DownlinkTx:
    """One DownlinkFrameItem -> the DownlinkTx for a GWMP PULL_RESP (LoRa only)."""
    ti = item.tx_info
    if not item.phy_payload:
        raise DownlinkRefused("empty phy_payload")
    if ti.modulation.WhichOneof("parameters") != "lora":
        raise DownlinkRefused("only LoRa downlinks are supported")
    lora = ti.modulation.lora
    if lora.bandwidth < 7000 or not 5 <= lora.spreading_factor <= 12:
        raise DownlinkRefused("bad LoRa bandwidth or spreading factor")
    if not 100_000_000 <= ti.frequency <= 3_000_000_000:
        raise DownlinkRefused("bad frequency", gw.TX_FREQ)
    timing = ti.timing.WhichOneof("parameters")
    tmst = tmms = None
    if timing == "delay":
        if len(ti.context) < 4:
            raise DownlinkRefused("delay timing needs a context of at least 4 bytes")
        tmst = (int.from_bytes(ti.context[:4], "big") + _us(ti.timing.delay.delay)) & 0xFFFFFFFF
    elif timing == "gps_epoch":
        tmms = _us(ti.timing.gps_epoch.time_since_gps_epoch) // 1000
    elif timing != "immediately":
        raise DownlinkRefused("no timing")
    return DownlinkTx(
        gateway_id=gateway_id,
        phy_payload=bytes(item.phy_payload),
        freq_hz=ti.frequency,
        sf=lora.spreading_factor,
        bw_khz=lora.bandwidth // 1000,
        tmst=tmst,
        tmms=tmms,
        immediate=timing == "immediately",
        power_dbm=ti.power,
        code_rate=CODE_RATE_NAMES.get(lora.code_rate, "4/5"),
        ipol=lora.polarization_inversion,
        board=ti.board,
        antenna=ti.antenna,
        purpose="relay",
        extra=(("downlink_id", str(downlink_id)), ("item", str(index))),
        window="c" if timing == "immediately" else "rx1",
    )


def tx_ack(gateway_id: str, downlink_id: int, statuses: list[int]) -> gw.DownlinkTxAck:
    ack = gw.DownlinkTxAck(gateway_id=gateway_id, downlink_id=downlink_id)
    for s in statuses:
        ack.items.add(status=s)
    return ack


def ack_status(error: str | None) -> int:
    if error is None or error == "NONE":
        return int(gw.OK)
    return int(TX_ACK_STATUS.get(error, gw.INTERNAL_ERROR))


def status_name(status: int) -> str:
    return str(gw.TxAckStatus.Name(status))
