"""What the outbox stores per format and how a stored body becomes an MQTT payload, and back.

The ingest path stores each reading in the outbox in the configured format, made once: JSON
text (formats.dumps), or a CBOR item cut at its referable strings (cbor_uplink.uplink_item); the
forwarder sends JSON as stored and splices CBOR items into messages, single or batched, with
string references (cbor_splice.cbor_messages). decode_payload turns either back into the JSON
structure. Pure: no IO.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import cbor2

from gateway_agent.model import Reading
from gateway_agent.upstream.cbor import LABELS, NAMES, cbor_item, item_cbor, json_form
from gateway_agent.upstream.cbor_splice import cbor_messages
from gateway_agent.upstream.cbor_uplink import uplink_item
from gateway_agent.upstream.formats import dumps, uplink_message

__all__ = [
    "LABELS",
    "NAMES",
    "cbor_item",
    "cbor_messages",
    "decode_payload",
    "encode_batch",
    "encode_single",
    "item_json",
    "json_form",
    "uplink_body",
    "uplink_item",
]


def uplink_body(
    r: Reading,
    gateway_id: str,
    device_name: str,
    tags: Sequence[str],
    fmt: str,
    device_class: str = "",
) -> str | bytes:
    """What the outbox stores for a reading: JSON text, or for `format = "cbor"` a CBOR item
    (uplink_item), so the drain never re-encodes. The class goes into JSON only (CBOR's
    labels are a fixed table)."""
    if fmt == "cbor":
        return uplink_item(r, gateway_id, device_name, tags)
    return dumps(uplink_message(r, gateway_id, device_name, tags, device_class))


def item_json(body: bytes) -> str:
    """A stored CBOR item as JSON text (the format was switched to JSON with a backlog)."""
    try:
        return dumps(json_form(cbor2.loads(item_cbor(body))))
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


def decode_payload(payload: bytes, fmt: str) -> Any:
    """For consumers and tests: the inverse of encode_single / encode_batch, as the JSON
    structure (binary as base64 or hex text, times as RFC 3339) whichever the format."""
    if fmt == "json":
        return json.loads(payload)
    return json_form(cbor2.loads(payload))
