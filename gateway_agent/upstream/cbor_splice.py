"""The drain's CBOR messages: stored items (cbor_item) spliced into one payload, single or a
batch, with string references (tags 256/25), without decoding them. Pure: no IO.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import orjson

from gateway_agent.upstream.cbor import ITEM_V1, TAG_NAMESPACE, cbor_head, cbor_item

_unpack = struct.unpack
_REFS = [b"\xd8\x19" + cbor_head(0, k) for k in range(4096)]  # tag 25: the k-th namespace string


def cbor_messages(items: Sequence[str | bytes], batch: bool) -> bytes:
    """One MQTT payload from stored items (cbor_item): a string-reference namespace (tag 256)
    over the item, or over an array of them when `batch`; each string the namespace already
    holds becomes a reference (tag 25). Strings enter the namespace in document order when at
    least as long as a reference to them, exactly as a decoder counts them. The drain's hot
    loop, so C does the cutting (a struct per piece layout) and the lookups (map); Python
    walks the strings one by one only in an item that has one the namespace lacks."""
    out: list[bytes] = [TAG_NAMESPACE]
    if batch:
        out.append(cbor_head(4, len(items)))
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
    if len(head) < 3 or head[0] != ITEM_V1:
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
        refs[chunk] = _REFS[k] if k < 4096 else b"\xd8\x19" + cbor_head(0, k)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # what orjson refuses (integers beyond 64 bits)
        return json.loads(text)
