"""What goes on the wire and into the outbox: CBOR (docs/store-and-forward.md "CBOR") and the
per-format outbox bodies.

The ingest path stores each reading in the outbox in the configured format, made once: JSON
text (formats.dumps), or a CBOR item cut at its referable strings (uplink_item); the forwarder
sends JSON as stored and splices CBOR items into messages (single or batched) with string
references (cbor_messages). decode_payload turns either back into the JSON structure.
"""

from __future__ import annotations

import binascii
import calendar
import datetime
import json
import operator
import struct
import threading
import time
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import cbor2
import orjson

from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Reading
from gateway_agent.upstream.formats import dumps, iso_time, json_default, tx_info, uplink_message

# CBOR (docs/store-and-forward.md "CBOR"): the JSON structures with integer map keys from
# LABELS (as SenML and COSE label their CBOR forms), binary and hex fields as byte strings,
# times as tag 1 epoch seconds, floats in their shortest exact width, and string references
# (tags 256/25) for repeated text. Keys inside codec-defined maps (object, measurements, flags,
# extras) stay text: an integer key is always a label, since JSON has only text keys. Two fields
# that repeat others of the same reading are left out and restored by the decoder: `id` when it
# is `{gatewayId}:{devEui}:{fCnt}` (DESIGN.md invariant 2), `deviceInfo.devEui` when = `devEui`.
# The writer below writes CBOR itself (decoding stays cbor2): cbor2 plus a Python pass over each
# message cost ~50 us a reading, and cbor2 cannot say where each string lies in its output, which
# is what lets the drain splice references into stored items without decoding them.

LABELS: dict[str, int] = {
    name: i
    for i, name in enumerate(
        [
            *("id", "gatewayId", "time", "timeValid", "deviceInfo", "devEui", "deviceName"),
            *("tags", "devAddr", "fCnt", "fPort", "confirmed", "data", "object"),
            *("measurements", "rxInfo", "txInfo", "rssi", "snr", "channel", "rfChain"),
            *("antenna", "board", "context", "gwTime", "crcStatus", "frequency", "modulation"),
            *("lora", "fsk", "bandwidth", "spreadingFactor", "codeRate", "datarate", "flags"),
            *("extras", "codec", "decodeError", "rule", "state", "severity", "measurement"),
            *("value", "message", "event"),
        ],
        start=1,
    )
}  # a wire contract: append only, never renumber
NAMES: dict[int, str] = {i: n for n, i in LABELS.items()}
_OPAQUE = frozenset(("object", "measurements", "flags", "extras"))  # codec-defined: keys stay text
_b64decode = binascii.a2b_base64
_pack = struct.pack
_unpack = struct.unpack


def _head(major: int, n: int) -> bytes:
    m = major << 5
    if n < 24:
        return bytes((m | n,))
    if n < 0x100:
        return bytes((m | 24, n))
    if n < 0x10000:
        return _pack(">BH", m | 25, n)
    if n < 0x100000000:
        return _pack(">BI", m | 26, n)
    return _pack(">BQ", m | 27, n)


_LABEL_BYTES = {name: _head(0, i) for name, i in LABELS.items()}
_SMALL_INTS = {i: _head(0, i) if i >= 0 else _head(1, -1 - i) for i in range(-1024, 4096)}
_FLOATS: dict[float, bytes] = {}  # readings repeat values (21.5): cache their encoding
_SECOND_EPOCH: dict[str, int] = {}  # "YYYY-mm-ddTHH:MM:SS" -> epoch seconds
_HEX_CACHE: dict[str, bytes | None] = {}  # lowercase hex -> bytes (EUIs and addresses repeat)


def _float(x: float) -> bytes:
    """A finite float in its shortest exact width (non-finite ones are null: _Writer.value)."""
    b = _FLOATS.get(x)
    if b is not None and x != 0:  # 0.0 == -0.0: the sign must survive
        return b
    b = _pack(">Bd", 0xFB, x)
    for fmt, head in ((">e", b"\xf9"), (">f", b"\xfa")):  # half, then single precision
        try:
            packed = _pack(fmt, x)
        except OverflowError:
            continue
        if _unpack(fmt, packed)[0] == x:
            b = head + packed
            break
    if len(_FLOATS) >= 4096:
        _FLOATS.clear()
    _FLOATS[x] = b
    return b


def _epoch(s: str) -> float | None:
    """`YYYY-mm-ddTHH:MM:SS.ffffffZ` (iso_time) -> epoch seconds, exact to the microsecond as a
    float64; None for any other text (sent as it is)."""
    if len(s) != 27 or s[19] != "." or s[26] != "Z" or not s[20:26].isdigit():
        return None
    head = s[:19]
    sec = _SECOND_EPOCH.get(head)
    if sec is None:
        try:
            sec = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
        except ValueError:
            return None
        if len(_SECOND_EPOCH) >= 256:
            _SECOND_EPOCH.clear()
        _SECOND_EPOCH[head] = sec
    return sec + int(s[20:26]) / 1_000_000


def _hex(s: str) -> bytes | None:
    """Lowercase hex -> bytes; None when the text would not come back identical."""
    if s in _HEX_CACHE:
        return _HEX_CACHE[s]
    b: bytes | None = None
    if 0 < len(s) <= 64:
        try:
            b = bytes.fromhex(s)
        except ValueError:
            b = None
        if b is not None and b.hex() != s:
            b = None
    if len(_HEX_CACHE) >= 4096:
        _HEX_CACHE.clear()
    _HEX_CACHE[s] = b
    return b


def _unb64(s: str) -> bytes | None:
    try:
        b = _b64decode(s)
    except (binascii.Error, ValueError):
        return None
    return b if binascii.b2a_base64(b, newline=False).decode() == s else None


_HEADS = {major: [_head(major, n) for n in range(256)] for major in (2, 3, 4, 5)}
# Field kinds: how a schema key's value is written.
_K_PLAIN, _K_TIME, _K_HEX, _K_B64, _K_MAP, _K_DEVINFO, _K_RX = range(7)
_KINDS = {
    "time": _K_TIME,
    "data": _K_B64,
    "context": _K_B64,
    "devEui": _K_HEX,
    "devAddr": _K_HEX,
    "gatewayId": _K_HEX,
    "deviceInfo": _K_DEVINFO,
    "rxInfo": _K_RX,
    "txInfo": _K_MAP,
    "modulation": _K_MAP,
    "lora": _K_MAP,
    "fsk": _K_MAP,
}  # anything else, the codec-defined maps included, is written as plain JSON data
_SCHEMA: dict[str, tuple[bytes, int]] = {
    k: (b, _KINDS.get(k, _K_PLAIN)) for k, b in _LABEL_BYTES.items()
}
_ITEM_V1 = 1  # first byte of a stored CBOR item (the outbox body for format = "cbor")
_TAG_NAMESPACE = b"\xd9\x01\x00"  # tag 256: a string-reference namespace
_REFS = [b"\xd8\x19" + _head(0, k) for k in range(4096)]  # tag 25: the k-th namespace string


# Written first, side by side, so ingest reuses them as one cached piece (uplink_item).
_DEVICE_FIELDS = ("gatewayId", "deviceInfo", "devEui", "devAddr", "fPort", "codec")
_RX_FIELDS = ("gatewayId", "crcStatus")


class _Writer:
    """One CBOR item, no references yet: every text or byte string long enough to be
    referenced is a part of its own and its index is noted (`slots`), so the drain can splice
    references in (cbor_messages) without decoding."""

    __slots__ = ("parts", "slots", "ap", "string", "blob", "value", "field", "labelled")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.slots: list[int] = []
        parts = self.parts
        self.ap = ap = parts.append
        slot = self.slots.append
        heads_t, heads_b, heads_a, heads_m = _HEADS[3], _HEADS[2], _HEADS[4], _HEADS[5]
        small = _SMALL_INTS
        schema = _SCHEMA

        def string(s: str | bytes) -> None:
            if type(s) is str:
                raw = s.encode()
                heads = heads_t
                major = 3
            else:
                raw = s  # type: ignore[assignment]  # bytes: `type(s) is str` does not narrow
                heads = heads_b
                major = 2
            n = len(raw)
            if n >= 3:  # the shortest a namespace takes (RFC 8949 registry, tag 256)
                slot(len(parts))
            ap((heads[n] if n < 256 else _head(major, n)) + raw)

        def blob(b: bytes) -> None:
            """Bytes that hardly ever repeat (a payload, a concentrator timestamp): sent as an
            indefinite-length string, which no namespace takes (tag 256's rule, and what cbor2
            does), so they cost the drain nothing and keep references to the others short."""
            n = len(b)
            if n < 3:
                ap(heads_b[n] + b)
            else:
                ap(b"\x5f" + (heads_b[n] if n < 256 else _head(2, n)) + b + b"\xff")

        def value(v: Any) -> None:
            t = type(v)
            if t is str:
                string(v)
            elif t is int:
                b = small.get(v)
                if b is not None:
                    ap(b)
                elif -(2**64) <= v < 2**64:
                    ap(_head(0, v) if v >= 0 else _head(1, -1 - v))
                else:  # bignum, tags 2/3 (the stdlib JSON path carries any integer): its
                    n = v if v >= 0 else -1 - v  # byte string counts in the namespace too
                    ap(b"\xc2" if v >= 0 else b"\xc3")
                    string(n.to_bytes((n.bit_length() + 7) // 8, "big"))
            elif t is float:
                ap(_float(v) if v - v == 0 else b"\xf6")  # NaN, inf: null, as JSON has it
            elif t is bool:
                ap(b"\xf5" if v else b"\xf4")
            elif v is None:
                ap(b"\xf6")
            elif t is dict:
                n = len(v)
                ap(heads_m[n] if n < 256 else _head(5, n))
                for k, x in v.items():
                    string(k)
                    value(x)
            elif t is list:
                n = len(v)
                ap(heads_a[n] if n < 256 else _head(4, n))
                for x in v:
                    value(x)
            else:  # frozen codec output, bytes, ...: what the JSON encoder makes of them
                value(json_default(v))

        def field(k: str, v: Any, eui: str | None) -> None:
            """One map entry: a known key as its label, the value as its field's kind says."""
            spec = schema.get(k)
            if spec is None:
                string(k)
                value(v)
                return
            ap(spec[0])
            kind = spec[1]
            t = type(v)
            if kind == _K_PLAIN:
                if t is int and v in small:
                    ap(small[v])
                else:
                    value(v)
            elif t is str and kind == _K_TIME:
                e = _epoch(v)
                if e is None:
                    string(v)
                else:
                    ap(_pack(">BBd", 0xC1, 0xFB, e))
            elif t is str and kind == _K_HEX:
                b = _hex(v)
                string(v if b is None else b)
            elif t is str and kind == _K_B64:
                b = _unb64(v)
                string(v) if b is None else blob(b)
            elif t is dict and kind == _K_MAP:
                labelled(v, None, None)
            elif t is dict and kind == _K_DEVINFO:
                labelled(v, "devEui" if eui is not None and v.get("devEui") == eui else None, None)
            elif t is list and kind == _K_RX:
                ap(heads_a[len(v)] if len(v) < 256 else _head(4, len(v)))
                for x in v:
                    labelled(x, None, None, _RX_FIELDS) if type(x) is dict else value(x)
            else:
                value(v)

        def labelled(
            m: dict[str, Any], skip: str | None, eui: str | None, first: tuple[str, ...] = ()
        ) -> None:
            """A schema map; the `first` keys first."""
            n = len(m) - (skip is not None and skip in m)
            ap(heads_m[n] if n < 256 else _head(5, n))
            for k in first:
                if k in m and k != skip:
                    field(k, m[k], eui)
            for k, v in m.items():
                if k != skip and k not in first:
                    field(k, v, eui)

        self.string, self.blob, self.value = string, blob, value
        self.field, self.labelled = field, labelled

    def message(self, m: Any) -> None:
        if type(m) is not dict:
            self.value(m)
            return
        eui = m.get("devEui")
        if type(eui) is not str:
            self.labelled(m, None, None)
        elif m.get("id") == f"{m.get('gatewayId')}:{eui}:{m.get('fCnt')}":
            self.labelled(m, "id", eui, _DEVICE_FIELDS)
        else:
            self.labelled(m, None, eui, _DEVICE_FIELDS)

    def extend(self, chunk: tuple[list[bytes], list[int]]) -> None:
        """Append a cached piece (parts and slots of another writer)."""
        base = len(self.parts)
        self.parts.extend(chunk[0])
        self.slots.extend([base + i for i in chunk[1]])

    def item(self) -> bytes:
        """The stored form (cbor_item): the item cut into pieces at its referable strings."""
        parts = self.parts
        item = b"".join(parts)
        ends = list(accumulate(map(len, parts)))
        cuts = [c for i in self.slots for c in (ends[i] - len(parts[i]), ends[i])]
        cuts.append(len(item))
        lengths = list(map(operator.sub, cuts, [0, *cuts[:-1]]))  # gap, string, ..., gap
        n = len(lengths)
        if n > _MAX_PIECES or max(lengths) > 0xFFFF:
            return _pack("<BH", _ITEM_V1, 0) + _TAG_NAMESPACE + item
        return _pack(f"<BH{n}H", _ITEM_V1, n, *lengths) + item


_MAX_PIECES = 4095  # a struct format per piece: keep the unpacking formats small


def cbor_item(m: Any) -> bytes:
    """A message as the outbox keeps it for `format = "cbor"`, made once at ingest so the drain
    only splices (the JSON text would cost a parse and a Python encode per reading there).
    Layout: version byte 1, a piece count n (uint16 LE), n piece lengths (uint16 LE), then the
    CBOR item, without string references, cut into n pieces: a gap, a string a namespace could
    take, a gap, ... a gap. With n = 0 the item follows in a namespace of its own (tag 256):
    too large to cut, its strings never touch the batch's."""
    w = _Writer()
    w.message(m)
    return w.item()


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
    std_id = r.id == f"{gateway_id}:{eui}:{r.fcnt}"
    n = 15 - std_id + bool(r.flags) + bool(r.extras) + bool(r.codec) + bool(r.decode_error)
    ap(_HEADS[5][n])
    key = (gateway_id, r.dev_eui, r.dev_addr, device_name, tuple(tags), r.f_port, r.codec)
    piece = _DEVICE_PIECES.get(key)
    if piece is None:
        d = _Writer()
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
    if not std_id:
        w.field("id", r.id, eui)
    _time(w, r.time)
    fcnt = r.fcnt
    ap(
        _L_TIME_VALID[r.time_valid]
        + _L_FCNT
        + (_SMALL_INTS[fcnt] if fcnt < 4096 else _head(0, fcnt))
        + _L_CONFIRMED[r.confirmed]
        + _L_DATA
    )
    w.blob(r.payload)
    ap(_L_OBJECT)
    value(dict(r.object))
    ap(_L_MEASUREMENTS)
    value(dict(r.measurements))
    rx = r.rx
    ap(_L_RXINFO + (_HEADS[4][len(rx)] if len(rx) < 256 else _head(4, len(rx))))
    for x in rx:
        _rx_item(w, x)
    ap(_L_TXINFO)
    if rx:
        rx0 = rx[0]
        tkey = (rx0.modulation, rx0.freq_hz, rx0.bitrate, rx0.sf, rx0.bw_khz, rx0.code_rate)
        piece = _TX_PIECES.get(tkey)
        if piece is None:
            t = _Writer()
            t.labelled(tx_info(rx0), None, None)
            piece = _cache(_TX_PIECES, tkey, t)
        w.extend(piece)
    else:
        ap(_HEADS[5][0])
    for k, v in (("flags", r.flags), ("extras", r.extras)):
        if v:
            ap(_LABEL_BYTES[k])
            value(dict(v))
    if r.decode_error:
        w.field("decodeError", r.decode_error, eui)
    return w.item()


def _rx_item(w: _Writer, rx: RxInfo) -> None:
    """One rxInfo entry as _Writer.labelled writes _rx_json(rx) (_RX_FIELDS first)."""
    opt = (rx.rssi_dbm, rx.snr_db, rx.channel, rx.rf_chain, rx.antenna, rx.board)
    n = 3 + len(opt) - opt.count(None) + (rx.tmst is not None) + (rx.gw_time is not None)
    w.ap(_HEADS[5][n])
    piece = _RX_PIECES.get(rx.gateway_id)
    if piece is None:
        g = _Writer()
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


def _time(w: _Writer, t: float) -> None:
    """A `time` field: what field("time", iso_time(t)) writes, without the text round trip
    (the same microseconds, the same float) for the years iso_time writes with four digits."""
    if 0 <= t < 253_402_300_800:  # 1970 .. 9999
        sec = int(t // 1)
        w.ap(_L_TIME_TAG + _pack(">d", sec + int((t - sec) * 1_000_000) / 1_000_000))
    else:
        w.field("time", iso_time(t), None)


def _writer() -> _Writer:
    w: _Writer | None = getattr(_WRITERS, "w", None)
    if w is None:
        w = _WRITERS.w = _Writer()
    w.parts.clear()
    w.slots.clear()
    return w


def _cache(cache: dict[Any, Any], key: Any, w: _Writer) -> tuple[list[bytes], list[int]]:
    if len(cache) >= 4096:
        cache.clear()
    piece = cache[key] = (w.parts, w.slots)
    return piece


_WRITERS = threading.local()  # a reused writer per thread (uplink_item)
_L_TIME_TAG = _LABEL_BYTES["time"] + b"\xc1\xfb"
_L_TIME_VALID = {
    True: _LABEL_BYTES["timeValid"] + b"\xf5",
    False: _LABEL_BYTES["timeValid"] + b"\xf4",
}
_L_FCNT = _LABEL_BYTES["fCnt"]
_L_CONFIRMED = {
    True: _LABEL_BYTES["confirmed"] + b"\xf5",
    False: _LABEL_BYTES["confirmed"] + b"\xf4",
}
_L_DATA, _L_OBJECT, _L_MEASUREMENTS = (_LABEL_BYTES[k] for k in ("data", "object", "measurements"))
_L_RXINFO, _L_TXINFO, _L_CONTEXT = (_LABEL_BYTES[k] for k in ("rxInfo", "txInfo", "context"))
_L_RX_OPT = tuple(
    _LABEL_BYTES[k] for k in ("rssi", "snr", "channel", "rfChain", "antenna", "board")
)


def cbor_messages(items: Sequence[str | bytes], batch: bool) -> bytes:
    """One MQTT payload from stored items (cbor_item): a string-reference namespace (tag 256)
    over the item, or over an array of them when `batch`; each string the namespace already
    holds becomes a reference (tag 25). Strings enter the namespace in document order when at
    least as long as a reference to them, exactly as a decoder counts them. The drain's hot
    loop, so C does the cutting (a struct per piece layout) and the lookups (map); Python
    walks the strings one by one only in an item that has one the namespace lacks."""
    out: list[bytes] = [_TAG_NAMESPACE]
    if batch:
        out.append(_head(4, len(items)))
    extend = out.extend
    refs: dict[bytes, bytes] = {}  # string (head + text) -> its reference
    get = refs.get
    layouts = _LAYOUTS
    for stored in items:
        # JSON text: stored before a switch to CBOR, or an alert or event.
        body = stored if type(stored) is bytes else cbor_item(_loads(stored))  # type: ignore[arg-type]
        try:
            head = body[: 3 + 2 * (body[1] | body[2] << 8)]
            layout = layouts.get(head)
            if layout is None:
                layout = _layout(head)
            if layout is _WHOLE:  # an item in a namespace of its own
                out.append(body[3:])
                continue
            cut = layout.unpack(body)
        except (IndexError, struct.error, ValueError) as e:
            raise ValueError(f"not a stored CBOR item: {e}") from None
        strings = cut[1::2]
        found = list(map(get, strings))
        if None in found:
            for i, chunk in enumerate(strings):
                ref = get(chunk)
                if ref is None:
                    _enter(refs, chunk)
                    ref = chunk
                found[i] = ref
        pieces = list(cut)
        pieces[1::2] = found
        extend(pieces)
    return b"".join(out)


def _layout(head: bytes) -> struct.Struct:
    if len(head) < 3 or head[0] != _ITEM_V1:
        raise ValueError(f"unknown version {head[:1].hex()} or truncated header")
    n = head[1] | head[2] << 8
    if n == 0:
        return _WHOLE
    lengths = _unpack(f"<{n}H", head[3:])
    if len(_LAYOUTS) >= 4096:
        _LAYOUTS.clear()
    layout = _LAYOUTS[head] = struct.Struct(f"<{len(head)}x" + "".join(f"{k}s" for k in lengths))
    return layout


_LAYOUTS: dict[bytes, struct.Struct] = {}  # item header -> how to cut the item into pieces
_WHOLE = struct.Struct("<3x")  # n = 0: not cut


def _enter(refs: dict[bytes, bytes], chunk: bytes) -> None:
    """A string seen for the first time: the namespace takes it if at least as long as a
    reference to it would be (head + text longer than the threshold = text reaches it)."""
    k = len(refs)
    if len(chunk) > (3 if k < 24 else 4 if k < 256 else 5 if k < 65536 else 7):
        refs[chunk] = _REFS[k] if k < 4096 else b"\xd8\x19" + _head(0, k)


def _item_cbor(body: bytes) -> bytes:
    """The plain CBOR of a stored item (no references)."""
    if len(body) < 3 or body[0] != _ITEM_V1:
        raise ValueError("not a stored CBOR item")
    return body[3 + 2 * (body[1] | body[2] << 8) :]


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what orjson refuses (integers beyond 64 bits)
        return json.loads(text)


def uplink_body(
    r: Reading, gateway_id: str, device_name: str, tags: Sequence[str], fmt: str
) -> str | bytes:
    """What the outbox stores for a reading: JSON text, or for `format = "cbor"` a CBOR item
    (uplink_item), so the drain never re-encodes."""
    if fmt == "cbor":
        return uplink_item(r, gateway_id, device_name, tags)
    return dumps(uplink_message(r, gateway_id, device_name, tags))


def item_json(body: bytes) -> str:
    """A stored CBOR item as JSON text (the format was switched to JSON with a backlog)."""
    try:
        return dumps(json_form(cbor2.loads(_item_cbor(body))))
    except (cbor2.CBORError, EOFError, TypeError) as e:  # a damaged row
        raise ValueError(f"not a stored CBOR item: {e}") from None


def encode_single(body: str | bytes, fmt: str) -> bytes:
    """One message's payload from an outbox body (JSON text or a stored CBOR item)."""
    if fmt == "json":
        return (body if type(body) is str else item_json(body)).encode()  # type: ignore[arg-type]
    return cbor_messages([body], batch=False)


def encode_batch(bodies: Sequence[str | bytes]) -> bytes:
    """A CBOR array of readings: one message for many readings (metered backhaul); repeated
    text (codec keys, names, EUIs) goes once per message."""
    return cbor_messages(bodies, batch=True)


def _iso(d: datetime.datetime) -> str:
    return d.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _named(v: Any, name: str = "") -> Any:
    t = type(v)
    if t is dict:
        out = {}
        for k, x in v.items():
            key = NAMES.get(k, str(k)) if type(k) is int else k
            out[key] = x if key in _OPAQUE else _named(x, key)
        return out
    if t is list:
        return [_named(x, name) for x in v]
    if t is bytes:
        return binascii.b2a_base64(v, newline=False).decode() if name in _BASE64 else v.hex()
    if isinstance(v, datetime.datetime):
        return _iso(v)
    return v


_BASE64 = frozenset(("data", "context"))


def json_form(m: Any) -> Any:
    """A decoded CBOR message (or batch) back in the JSON structure `format = "json"` sends."""
    if type(m) is list:
        return [json_form(x) for x in m]
    out = _named(m)
    if type(out) is dict:
        eui = out.get("devEui")
        info = out.get("deviceInfo")
        if type(eui) is str and type(info) is dict and "devEui" not in info:
            out["deviceInfo"] = {"devEui": eui, **info}
        if type(eui) is str and "id" not in out and "fCnt" in out:
            out = {"id": f"{out.get('gatewayId')}:{eui}:{out['fCnt']}", **out}
    return out


def decode_payload(payload: bytes, fmt: str) -> Any:
    """For consumers and tests: the inverse of encode_single / encode_batch, as the JSON
    structure (binary as base64 or hex text, times as RFC 3339) whichever the format."""
    if fmt == "json":
        return json.loads(payload)
    return json_form(cbor2.loads(payload))
