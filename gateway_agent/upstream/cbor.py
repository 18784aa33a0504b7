"""The CBOR form of upstream messages (docs/store-and-forward.md "CBOR"): labels, the writer
that makes the outbox's stored items (cbor_item), and json_form, the way back. Pure: no IO.
"""

from __future__ import annotations

import binascii
import calendar
import datetime
import operator
import struct
import time
from itertools import accumulate
from typing import Any

from gateway_agent.upstream.formats import json_default

# CBOR (docs/store-and-forward.md "CBOR"): the JSON structures with integer map keys from
# LABELS (as SenML and COSE label their CBOR forms), binary and hex fields as byte strings,
# times as tag 1 epoch seconds, floats in their shortest exact width, and string references
# (tags 256/25) for repeated text. Keys inside codec-defined maps (object, measurements, flags,
# extras) stay text: an integer key is always a label, since JSON has only text keys. Fields
# that repeat others of the same reading are shortened and restored by the decoder: a reading's
# `id`, `{devEui}-{session}-{fCnt}` (DESIGN.md invariant 2), travels as its `session` part only
# (4 bytes when plain hex); `deviceInfo.devEui` is left out when = `devEui`. An item stored by an
# older agent (before 2026-12) has neither `id` nor `session`: its id was
# `{gatewayId}:{devEui}:{fCnt}`, and the decoder still restores that.
# The writer below writes CBOR itself (decoding stays cbor2): cbor2 cannot say where each string
# lies in its output, which is what lets the drain splice references into stored items without
# decoding them; cbor2 doing the drain's job costs ~6x ours per batch (hil/bench/cbor.py, figures
# and the decision in docs/cbor-encoder.md).

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
            *("value", "message", "event", "session"),
        ],
        start=1,
    )
}  # a wire contract: append only, never renumber
NAMES: dict[int, str] = {i: n for n, i in LABELS.items()}
_OPAQUE = frozenset(("object", "measurements", "flags", "extras"))  # codec-defined: keys stay text
_b64decode = binascii.a2b_base64
_pack = struct.pack
_unpack = struct.unpack


def cbor_head(major: int, n: int) -> bytes:
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


LABEL_BYTES = {name: cbor_head(0, i) for name, i in LABELS.items()}
SMALL_INTS = {i: cbor_head(0, i) if i >= 0 else cbor_head(1, -1 - i) for i in range(-1024, 4096)}
_FLOATS: dict[float, bytes] = {}  # readings repeat values (21.5): cache their encoding
_SECOND_EPOCH: dict[str, int] = {}  # "YYYY-mm-ddTHH:MM:SS" -> epoch seconds
_HEX_CACHE: dict[str, bytes | None] = {}  # lowercase hex -> bytes (EUIs and addresses repeat)


def _float(x: float) -> bytes:
    """A finite float in its shortest exact width (non-finite ones are null: Writer.value)."""
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


HEADS = {major: [cbor_head(major, n) for n in range(256)] for major in (2, 3, 4, 5)}
# Field kinds: how a schema key's value is written.
_K_PLAIN, _K_TIME, _K_HEX, _K_B64, _K_MAP, _K_DEVINFO, _K_RX = range(7)
_KINDS = {
    "time": _K_TIME,
    "data": _K_B64,
    "context": _K_B64,
    "devEui": _K_HEX,
    "devAddr": _K_HEX,
    "gatewayId": _K_HEX,
    "session": _K_HEX,
    "deviceInfo": _K_DEVINFO,
    "rxInfo": _K_RX,
    "txInfo": _K_MAP,
    "modulation": _K_MAP,
    "lora": _K_MAP,
    "fsk": _K_MAP,
}  # anything else, the codec-defined maps included, is written as plain JSON data
_SCHEMA: dict[str, tuple[bytes, int]] = {
    k: (b, _KINDS.get(k, _K_PLAIN)) for k, b in LABEL_BYTES.items()
}
ITEM_V1 = 1  # first byte of a stored CBOR item (the outbox body for format = "cbor")
TAG_NAMESPACE = b"\xd9\x01\x00"  # tag 256: a string-reference namespace


# Written first, side by side, so ingest reuses them as one cached piece (uplink_item).
_DEVICE_FIELDS = ("gatewayId", "deviceInfo", "devEui", "devAddr", "fPort", "codec")
_RX_FIELDS = ("gatewayId", "crcStatus")


class Writer:
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
        heads_t, heads_b, heads_a, heads_m = HEADS[3], HEADS[2], HEADS[4], HEADS[5]
        small = SMALL_INTS
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
            ap((heads[n] if n < 256 else cbor_head(major, n)) + raw)

        def blob(b: bytes) -> None:
            """Bytes that hardly ever repeat (a payload, a concentrator timestamp): sent as an
            indefinite-length string, which no namespace takes (tag 256's rule, and what cbor2
            does), so they cost the drain nothing and keep references to the others short."""
            n = len(b)
            if n < 3:
                ap(heads_b[n] + b)
            else:
                ap(b"\x5f" + (heads_b[n] if n < 256 else cbor_head(2, n)) + b + b"\xff")

        def value(v: Any) -> None:
            t = type(v)
            if t is str:
                string(v)
            elif t is int:
                b = small.get(v)
                if b is not None:
                    ap(b)
                elif -(2**64) <= v < 2**64:
                    ap(cbor_head(0, v) if v >= 0 else cbor_head(1, -1 - v))
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
                ap(heads_m[n] if n < 256 else cbor_head(5, n))
                for k, x in v.items():
                    string(k)
                    value(x)
            elif t is list:
                n = len(v)
                ap(heads_a[n] if n < 256 else cbor_head(4, n))
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
                ap(heads_a[len(v)] if len(v) < 256 else cbor_head(4, len(v)))
                for x in v:
                    labelled(x, None, None, _RX_FIELDS) if type(x) is dict else value(x)
            else:
                value(v)

        def labelled(
            m: dict[str, Any], skip: str | None, eui: str | None, first: tuple[str, ...] = ()
        ) -> None:
            """A schema map; the `first` keys first."""
            n = len(m) - (skip is not None and skip in m)
            ap(heads_m[n] if n < 256 else cbor_head(5, n))
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
            return
        rid = m.get("id")
        tag = session_of(rid, eui, m.get("fCnt")) if type(rid) is str else None
        if tag is not None:  # `id` as its session part, where it stood
            m = {("session" if k == "id" else k): (tag if k == "id" else v) for k, v in m.items()}
            self.labelled(m, None, eui, _DEVICE_FIELDS)
        elif rid == f"{m.get('gatewayId')}:{eui}:{m.get('fCnt')}":  # stored before 2026-12
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
            return _pack("<BH", ITEM_V1, 0) + TAG_NAMESPACE + item
        return _pack(f"<BH{n}H", ITEM_V1, n, *lengths) + item


_MAX_PIECES = 4095  # a struct format per piece: keep the unpacking formats small


def session_of(rid: str, eui: str, fcnt: Any) -> str | None:
    """The session part of a reading id `{eui}-{session}-{fcnt}` (sessionid.reading_id), or
    None when `rid` is not one: the decoder then gets the id whole."""
    if type(fcnt) is not int or not rid.startswith(eui):
        return None
    tail = f"-{fcnt}"
    tag = rid[len(eui) + 1 : len(rid) - len(tail)]
    return tag if f"{eui}-{tag}{tail}" == rid else None


def cbor_item(m: Any) -> bytes:
    """A message as the outbox keeps it for `format = "cbor"`, made once at ingest so the drain
    only splices (the JSON text would cost a parse and a Python encode per reading there).
    Layout: version byte 1, a piece count n (uint16 LE), n piece lengths (uint16 LE), then the
    CBOR item, without string references, cut into n pieces: a gap, a string a namespace could
    take, a gap, ... a gap. With n = 0 the item follows in a namespace of its own (tag 256):
    too large to cut, its strings never touch the batch's."""
    w = Writer()
    w.message(m)
    return w.item()


def item_cbor(body: bytes) -> bytes:
    """The plain CBOR of a stored item (no references)."""
    if len(body) < 3 or body[0] != ITEM_V1:
        raise ValueError("not a stored CBOR item")
    return body[3 + 2 * (body[1] | body[2] << 8) :]


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
            tag = out.pop("session", None)
            if type(tag) is str:
                out = {"id": f"{eui}-{tag}-{out['fCnt']}", **out}
            else:  # an item stored before 2026-12 (ids named the gateway then)
                out = {"id": f"{out.get('gatewayId')}:{eui}:{out['fCnt']}", **out}
    return out
