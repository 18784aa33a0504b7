"""Semtech UDP packet-forwarder (GWMP) datagrams: parse and build. Pure: no IO, no clock.

Facts from protocols/GWMP.md; section numbers below refer to it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway_agent.errors import FrameError
from gateway_agent.lorawan.frozen import fast_constructor
from gateway_agent.lorawan.radio import DownlinkTx, RxInfo

PUSH_DATA, PUSH_ACK, PULL_DATA, PULL_RESP, PULL_ACK, TX_ACK = range(6)
VERSIONS = (1, 2)
SERVER_TYPES = (PUSH_ACK, PULL_RESP, PULL_ACK)  # sent by a server: never answer them (pitfall 16)
PLACEHOLDER_EUI = "aa555a0000000000"  # Semtech sample configs (pitfall 17)
MIN_PHY_LEN = 12  # smallest LoRaWAN frame: MHDR + FHDR(7) + MIC(4)

_DATR_LORA = re.compile(r"SF(\d{1,2})BW(\d{1,4})")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_STAT_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?: ?(?:GMT|UTC|Z))?"
)


@dataclass(frozen=True, slots=True)
class Header:
    version: int
    token: bytes  # 2 bytes, opaque: echoed unchanged, never byte-swapped
    type: int
    gateway_eui: str | None  # 16 lowercase hex digits, wire order; None for types without EUI


@dataclass(frozen=True, slots=True)
class PushData:
    version: int
    token: bytes
    gateway_eui: str
    rxpk: tuple[Any, ...]  # raw JSON items: each is checked on its own by parse_rxpk
    stat: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class PullData:
    version: int
    token: bytes
    gateway_eui: str


@dataclass(frozen=True, slots=True)
class TxAck:
    version: int
    token: bytes
    gateway_eui: str
    error: str | None  # None = accepted ("queued", not "transmitted"; section 6)
    warn: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class StatReport:
    """The root-level `stat` object (section 4.2). Counters cover the last interval only."""

    time: str | None = None
    time_epoch: float | None = None
    lati: float | None = None
    long: float | None = None
    alti: float | None = None
    rxnb: int | None = None
    rxok: int | None = None
    rxfw: int | None = None
    ackr: float | None = None
    dwnb: int | None = None
    txnb: int | None = None
    temp: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


# --------------------------------------------------------------------------- parsing


def parse_header(data: bytes) -> Header:
    """Validate the common header (section 2/3). Raises FrameError; never looks at the JSON."""
    if len(data) < 4:
        raise FrameError(f"{len(data)} bytes", reason="too_short")
    version, kind = data[0], data[3]
    if version not in VERSIONS:
        raise FrameError(f"version {version}", reason="bad_version")
    if kind > TX_ACK:
        raise FrameError(f"identifier {kind}", reason="unknown_type")
    if kind in SERVER_TYPES:
        raise FrameError(f"identifier {kind}", reason="server_type")
    if len(data) < 12 or (kind == PULL_DATA and len(data) != 12):
        raise FrameError(f"{len(data)} bytes for type {kind}", reason="bad_length")
    return Header(version, bytes(data[1:3]), kind, data[4:12].hex())


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity from a broken forwarder (pitfall 11)


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(body)  # ~3x the stdlib; rejects NaN/Infinity and bad UTF-8 too
    except orjson.JSONDecodeError:
        # What orjson refuses but JSON allows (integers beyond 64 bits in a vendor field) must
        # not cost the datagram's uplinks: the stdlib decides, on this rare path only.
        try:
            obj = json.loads(body.decode("utf-8"), parse_constant=_json_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise FrameError(str(exc)[:80], reason="bad_json") from exc
    if not isinstance(obj, dict):
        raise FrameError("JSON body is not an object", reason="bad_json")
    return obj


def parse_datagram(data: bytes) -> PushData | PullData | TxAck:
    """One datagram arriving at the server. Raises FrameError with a reason token."""
    h = parse_header(data)
    eui = h.gateway_eui or ""
    if h.type == PULL_DATA:
        return PullData(h.version, h.token, eui)
    if h.type == TX_ACK:
        return _tx_ack(h, data[12:])
    root = _load_object(data[12:])
    rxpk = root.get("rxpk", [])
    if not isinstance(rxpk, list):
        raise FrameError("rxpk is not an array", reason="bad_json")
    stat = root.get("stat")
    return PushData(h.version, h.token, eui, tuple(rxpk), stat if isinstance(stat, dict) else None)


def parse_tx_ack(data: bytes) -> TxAck:
    """A whole TX_ACK datagram (section 6). Success: no body, `{}`, no `error`, or "NONE"."""
    h = parse_header(data)
    if h.type != TX_ACK:
        raise FrameError(f"identifier {h.type}", reason="unknown_type")
    return _tx_ack(h, data[12:])


def _tx_ack(h: Header, body: bytes) -> TxAck:
    eui = h.gateway_eui or ""
    # Some forwarders NUL-pad or send whitespace; both mean "no JSON".
    if not body.strip(b"\x00 \r\n\t"):
        return TxAck(h.version, h.token, eui, None)
    ack = _load_object(body).get("txpk_ack")
    if not isinstance(ack, dict):
        return TxAck(h.version, h.token, eui, None)
    err, warn = ack.get("error"), ack.get("warn")
    error = str(err)[:40] if err is not None and err != "NONE" else None
    return TxAck(h.version, h.token, eui, error, str(warn)[:40] if warn is not None else None)


def _is_num(v: Any) -> bool:
    t = type(v)
    return (t is int) or (t is float and math.isfinite(v))


def _opt_num(v: Any) -> float | None:
    t = type(v)  # exact types: bool is not a number here, and this is the per-frame hot path
    if t is float:
        return v if math.isfinite(v) else None
    if t is int:
        return float(v)
    return None


def _opt_int(v: Any) -> int | None:
    t = type(v)
    if t is int:
        return v  # type: ignore[no-any-return]
    if t is float and math.isfinite(v) and v.is_integer():
        return int(v)
    return None


def decode_b64(s: Any) -> bytes:
    """Strict standard base64, padding optional (pitfall 7). Raises FrameError(bad_base64)."""
    if type(s) is str and not len(s) % 4:
        # The usual, padded case in C. strict_mode accepts a subset of what the rules below
        # accept, with the same bytes (checked by tests/test_gwmp_wire.py); the rest goes on.
        try:
            return binascii.a2b_base64(s, strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    if not isinstance(s, str) or not _B64.fullmatch(s):
        raise FrameError("data is not standard base64", reason="bad_base64")
    core = s.rstrip("=")
    if len(core) % 4 == 1:
        raise FrameError("impossible base64 length", reason="bad_base64")
    try:
        return base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FrameError("data is not standard base64", reason="bad_base64") from exc


# Values are validated above, so RxInfo.__post_init__ would only repeat the checks.
_new_rx = fast_constructor(RxInfo)
_DATR_CACHE: dict[str, tuple[int, int]] = {}  # the handful of valid LoRa datr strings seen


def parse_rxpk(
    obj: Any, gateway_eui: str, rx_mono: float, rx_wall: float, source: str
) -> list[tuple[RxInfo, bytes]]:
    """One rxpk (section 4.1) -> one (RxInfo, PHYPayload) per antenna. Raises FrameError."""
    if not isinstance(obj, dict):
        raise FrameError("rxpk item is not an object", reason="bad_rxpk")
    stat = obj.get("stat")
    if stat == -1 and not isinstance(stat, (bool, float)):
        raise FrameError("CRC failed", reason="crc_bad")
    if stat == 0 and not isinstance(stat, (bool, float)):
        raise FrameError("no CRC", reason="crc_none")
    if not isinstance(stat, int) or isinstance(stat, bool) or stat != 1:
        raise FrameError(f"stat {stat!r}", reason="bad_rxpk")
    modu, datr = obj.get("modu"), obj.get("datr")
    sf = bw = bitrate = None
    if modu == "LORA":
        sfbw = _DATR_CACHE.get(datr) if type(datr) is str else None
        if sfbw is None:
            m = _DATR_LORA.fullmatch(datr) if isinstance(datr, str) else None
            if m is None or not 5 <= int(m[1]) <= 12 or not 7 <= int(m[2]) <= 1625:
                raise FrameError(f"datr {str(datr)[:20]!r}", reason="bad_datr")
            sfbw = (int(m[1]), int(m[2]))
            if len(_DATR_CACHE) < 64:
                _DATR_CACHE[str(datr)] = sfbw
        sf, bw = sfbw
    elif modu == "FSK":
        bitrate = _opt_int(datr)
        if bitrate is None or not 0 < bitrate <= 1_000_000:
            raise FrameError(f"datr {str(datr)[:20]!r}", reason="bad_datr")
    else:
        raise FrameError(f"modu {str(modu)[:10]!r}", reason="bad_modu")
    freq = _opt_num(obj.get("freq"))
    if freq is None or not 100.0 <= freq <= 3000.0:
        raise FrameError(f"freq {str(obj.get('freq'))[:20]!r}", reason="bad_freq")
    tmst = obj.get("tmst")
    if tmst is not None:
        tmst = _opt_int(tmst)
        if tmst is None or not 0 <= tmst <= 0xFFFFFFFF:
            raise FrameError("tmst is not a 32-bit counter", reason="bad_rxpk")
    phy = decode_b64(obj.get("data"))
    size = _opt_int(obj.get("size"))
    if size is None:
        raise FrameError("size missing", reason="bad_rxpk")
    if size != len(phy):
        raise FrameError(f"size {size} != {len(phy)} decoded", reason="size_mismatch")
    if len(phy) < MIN_PHY_LEN:
        raise FrameError(f"{len(phy)} bytes", reason="payload_too_short")
    codr = obj.get("codr")
    gw_time = obj.get("time")
    # Positional RxInfo (field order of radio.py): this runs once per frame heard.
    common = (
        round(freq * 1_000_000),
        modu,
        sf,
        bw,
        bitrate,
        codr[:8] if type(codr) is str and modu == "LORA" else None,
    )
    rf_chain, board = _opt_int(obj.get("rfch")), _opt_int(obj.get("brd"))
    tail = (tmst, gw_time[:40] if type(gw_time) is str else None, _opt_int(obj.get("tmms")), source)
    rsig = obj.get("rsig")
    if rsig is not None and not isinstance(rsig, list):
        raise FrameError("rsig is not an array", reason="bad_rxpk")
    antennas = [a for a in rsig if isinstance(a, dict)] if rsig else None
    if not antennas:
        rx = _new_rx(
            gateway_eui,
            rx_mono,
            rx_wall,
            *common,
            _opt_num(obj.get("rssi")),
            _opt_num(obj.get("lsnr")),
            _opt_int(obj.get("chan")),
            rf_chain,
            board,
            None,
            *tail,
        )
        return [(rx, phy)]
    out = []
    for a in antennas:
        chan = _opt_int(a.get("chan"))
        rx = _new_rx(
            gateway_eui,
            rx_mono,
            rx_wall,
            *common,
            _opt_num(a.get("rssic", obj.get("rssi"))),
            _opt_num(a.get("lsnr", obj.get("lsnr"))),
            chan if chan is not None else _opt_int(obj.get("chan")),
            rf_chain,
            board,
            _opt_int(a.get("ant")),
            *tail,
        )
        out.append((rx, phy))
    return out


def parse_stat_time(s: Any) -> float | None:
    """`YYYY-MM-DD HH:MM:SS GMT` (also ISO-ish forms) -> epoch seconds; None when unreadable."""
    m = _STAT_TIME.fullmatch(s.strip()) if isinstance(s, str) else None
    if m is None:
        return None
    try:
        y, mo, d, h, mi, sec = (int(g) for g in m.groups())
        t = dt.datetime(y, mo, d, h, mi, sec, tzinfo=dt.UTC)
    except ValueError:
        return None
    return t.timestamp()


def parse_stat(obj: Any) -> StatReport:
    """Tolerant: a field of the wrong type is left out, vendor keys are ignored, never raises."""
    if not isinstance(obj, dict):
        return StatReport()
    t = obj.get("time")
    return StatReport(
        time=t[:40] if isinstance(t, str) else None,
        time_epoch=parse_stat_time(t),
        lati=_opt_num(obj.get("lati")),
        long=_opt_num(obj.get("long")),
        alti=_opt_num(obj.get("alti")),
        rxnb=_opt_int(obj.get("rxnb")),
        rxok=_opt_int(obj.get("rxok")),
        rxfw=_opt_int(obj.get("rxfw")),
        ackr=_opt_num(obj.get("ackr")),
        dwnb=_opt_int(obj.get("dwnb")),
        txnb=_opt_int(obj.get("txnb")),
        temp=_opt_num(obj.get("temp")),
    )


# --------------------------------------------------------------------------- building


def _check(version: int, token: bytes) -> None:
    if version not in VERSIONS or len(token) != 2:
        raise ValueError("GWMP version must be 1 or 2 and the token 2 bytes")


def push_ack(version: int, token: bytes) -> bytes:
    _check(version, token)
    return bytes((version,)) + token + bytes((PUSH_ACK,))


def pull_ack(version: int, token: bytes) -> bytes:
    _check(version, token)
    return bytes((version,)) + token + bytes((PULL_ACK,))


def txpk(tx: DownlinkTx) -> dict[str, Any]:
    """The txpk object of section 5 for a LoRaWAN downlink (ipol true unless a relayed downlink
    says otherwise; ncrc always true)."""
    d: dict[str, Any] = {"imme": tx.immediate}
    if not tx.immediate:
        if tx.tmst is not None:
            d["tmst"] = tx.tmst
        else:
            d["tmms"] = tx.tmms
    d.update(
        # freq_hz is an integer, so /1e6 is the nearest double and its repr has <= 6 decimals.
        freq=round(tx.freq_hz / 1_000_000, 6),
        rfch=tx.rf_chain,
        powe=tx.power_dbm,
        modu="LORA",
        datr=f"SF{tx.sf}BW{tx.bw_khz}",
        codr=tx.code_rate,
        ipol=tx.ipol,
        ncrc=True,
        size=len(tx.phy_payload),
        data=base64.b64encode(tx.phy_payload).decode("ascii"),
    )
    if tx.board:
        d["brd"] = tx.board
    if tx.antenna:
        d["ant"] = tx.antenna
    return d


def pull_resp(version: int, token: bytes, tx: DownlinkTx) -> bytes:
    """PULL_RESP: version, token, 0x03, `{"txpk":{...}}` — no gateway EUI (pitfall 4)."""
    _check(version, token)
    body = json.dumps({"txpk": txpk(tx)}, separators=(",", ":"))
    return bytes((version,)) + token + bytes((PULL_RESP,)) + body.encode("ascii")
