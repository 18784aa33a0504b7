"""The ingest hot path's CBOR item for a reading (uplink_item): what cbor_item(uplink_message(...))
writes, made straight from the Reading with the pieces a device or gateway repeats cached.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from typing import Any

from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Reading
from gateway_agent.upstream.cbor import (
    HEADS,
    LABEL_BYTES,
    SMALL_INTS,
    Writer,
    cbor_head,
    session_of,
)
from gateway_agent.upstream.formats import iso_time, tx_info

_pack = struct.pack

_DEVICE_PIECES: dict[Any, Any] = {}  # device fields -> written (_DEVICE_FIELDS)
_RX_PIECES: dict[Any, Any] = {}  # gateway id -> its written rxInfo fields (_RX_FIELDS)
_TX_PIECES: dict[Any, Any] = {}  # radio setting -> written txInfo


def uplink_item(
    r: Reading, gateway_id: str, device_name: str = "", tags: Sequence[str] = ()
) -> bytes:
    """cbor_item(uplink_message(r, ...)) made straight from the reading, on the ingest hot
    path: the fields one device or gateway repeats are written once and reused, times go
    straight to tag 1, and the writer is reused (one per thread).
    tests/test_cbor_wire.py holds the two equal."""
    eui = r.dev_eui.hex()
    w = _writer()
    ap, value = w.ap, w.value
    tag = session_of(r.id, eui, r.fcnt)
    old_id = tag is None and r.id == f"{gateway_id}:{eui}:{r.fcnt}"  # made before 2026-12
    n = 15 - old_id + bool(r.flags) + bool(r.extras) + bool(r.codec) + bool(r.decode_error)
    ap(HEADS[5][n])
    key = (gateway_id, r.dev_eui, r.dev_addr, device_name, tuple(tags), r.f_port, r.codec)
    piece = _DEVICE_PIECES.get(key)
    if piece is None:
        d = Writer()
        for k, v in (
            ("gatewayId", gateway_id),
            ("deviceInfo", {"devEui": eui, "deviceName": device_name, "tags": list(tags)}),
            ("devEui", eui),
            ("devAddr", r.dev_addr.hex()),
            ("fPort", r.f_port),
            *((("codec", r.codec),) if r.codec else ()),
        ):
            d.field(k, v, eui)
        piece = _cache(_DEVICE_PIECES, key, d)
    w.extend(piece)
    if tag is not None:
        w.field("session", tag, eui)  # the id's session part: the decoder rebuilds the id
    elif not old_id:
        w.field("id", r.id, eui)
    _time(w, r.time)
    fcnt = r.fcnt
    ap(
        _L_TIME_VALID[r.time_valid]
        + _L_FCNT
        + (SMALL_INTS[fcnt] if fcnt < 4096 else cbor_head(0, fcnt))
        + _L_CONFIRMED[r.confirmed]
        + _L_DATA
    )
    w.blob(r.payload)
    ap(_L_OBJECT)
    value(dict(r.object))
    ap(_L_MEASUREMENTS)
    value(dict(r.measurements))
    rx = r.rx
    ap(_L_RXINFO + (HEADS[4][len(rx)] if len(rx) < 256 else cbor_head(4, len(rx))))
    for x in rx:
        _rx_item(w, x)
    ap(_L_TXINFO)
    if rx:
        rx0 = rx[0]
        tkey = (rx0.modulation, rx0.freq_hz, rx0.bitrate, rx0.sf, rx0.bw_khz, rx0.code_rate)
        piece = _TX_PIECES.get(tkey)
        if piece is None:
            t = Writer()
            t.labelled(tx_info(rx0), None, None)
            piece = _cache(_TX_PIECES, tkey, t)
        w.extend(piece)
    else:
        ap(HEADS[5][0])
    for k, v in (("flags", r.flags), ("extras", r.extras)):
        if v:
            ap(LABEL_BYTES[k])
            value(dict(v))
    if r.decode_error:
        w.field("decodeError", r.decode_error, eui)
    return w.item()


def _rx_item(w: Writer, rx: RxInfo) -> None:
    """One rxInfo entry as Writer.labelled writes _rx_json(rx) (_RX_FIELDS first)."""
    opt = (rx.rssi_dbm, rx.snr_db, rx.channel, rx.rf_chain, rx.antenna, rx.board)
    n = 3 + len(opt) - opt.count(None) + (rx.tmst is not None) + (rx.gw_time is not None)
    w.ap(HEADS[5][n])
    piece = _RX_PIECES.get(rx.gateway_id)
    if piece is None:
        g = Writer()
        g.field("gatewayId", rx.gateway_id, None)
        g.field("crcStatus", "CRC_OK", None)
        piece = _cache(_RX_PIECES, rx.gateway_id, g)
    w.extend(piece)
    _time(w, rx.rx_wall)
    ap, value = w.ap, w.value
    for label, v in zip(_L_RX_OPT, opt, strict=True):
        if v is not None:
            ap(label)
            value(v)
    if rx.tmst is not None:
        ap(_L_CONTEXT)
        w.blob(rx.tmst.to_bytes(4, "big"))
    if rx.gw_time is not None:
        w.field("gwTime", rx.gw_time, None)


def _time(w: Writer, t: float) -> None:
    """A `time` field: what field("time", iso_time(t)) writes, without the text round trip
    (the same microseconds, the same float) for the years iso_time writes with four digits."""
    if 0 <= t < 253_402_300_800:  # 1970 .. 9999
        sec = int(t // 1)
        w.ap(_L_TIME_TAG + _pack(">d", sec + int((t - sec) * 1_000_000) / 1_000_000))
    else:
        w.field("time", iso_time(t), None)


def _writer() -> Writer:
    w: Writer | None = getattr(_WRITERS, "w", None)
    if w is None:
        w = _WRITERS.w = Writer()
    w.parts.clear()
    w.slots.clear()
    return w


def _cache(cache: dict[Any, Any], key: Any, w: Writer) -> tuple[list[bytes], list[int]]:
    if len(cache) >= 4096:
        cache.clear()
    piece = cache[key] = (w.parts, w.slots)
    return piece


_WRITERS = threading.local()  # a reused writer per thread (uplink_item)
_L_TIME_TAG = LABEL_BYTES["time"] + b"\xc1\xfb"
_L_TIME_VALID = {
    True: LABEL_BYTES["timeValid"] + b"\xf5",
    False: LABEL_BYTES["timeValid"] + b"\xf4",
}
_L_FCNT = LABEL_BYTES["fCnt"]
_L_CONFIRMED = {
    True: LABEL_BYTES["confirmed"] + b"\xf5",
    False: LABEL_BYTES["confirmed"] + b"\xf4",
}
_L_DATA, _L_OBJECT, _L_MEASUREMENTS = (LABEL_BYTES[k] for k in ("data", "object", "measurements"))
_L_RXINFO, _L_TXINFO, _L_CONTEXT = (LABEL_BYTES[k] for k in ("rxInfo", "txInfo", "context"))
_L_RX_OPT = tuple(LABEL_BYTES[k] for k in ("rssi", "snr", "channel", "rfChain", "antenna", "board"))
