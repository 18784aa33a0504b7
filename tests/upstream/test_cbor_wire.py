"""CBOR wire format: lossless against the JSON messages the real formatter writes, compact, and
readable by a stock CBOR decoder (integer labels, byte strings, tag 1 times, string refs)."""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from types import MappingProxyType
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Alert, Reading, reading_id
from gateway_agent.upstream.formats import alert_message, dumps, event_message, uplink_message
from gateway_agent.upstream.wire import (
    LABELS,
    NAMES,
    cbor_item,
    decode_payload,
    encode_batch,
    encode_single,
    item_json,
    uplink_item,
)

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
hex_bytes = st.binary(min_size=1, max_size=8)


@st.composite
def rx_infos(draw: Any) -> RxInfo:
    lora = draw(st.booleans())
    return RxInfo(
        gateway_id=draw(st.one_of(hex_bytes.map(bytes.hex), st.text(max_size=12))),
        rx_mono=0.0,
        rx_wall=draw(st.floats(0, 4e9)),
        rssi_dbm=draw(st.one_of(st.none(), st.integers(-140, 0))),
        snr_db=draw(st.one_of(st.none(), st.floats(-25, 15))),
        freq_hz=draw(st.integers(400_000_000, 930_000_000)),
        sf=draw(st.integers(7, 12)) if lora else None,
        bw_khz=125 if lora else None,
        code_rate="4/5" if lora else None,
        modulation="LORA" if lora else "FSK",
        bitrate=None if lora else 50_000,
        channel=draw(st.one_of(st.none(), st.integers(0, 15))),
        rf_chain=draw(st.one_of(st.none(), st.integers(0, 1))),
        tmst=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))),
        gw_time=draw(st.one_of(st.none(), st.just("2024-11-25T07:33:20.123456789Z"))),
    )


@st.composite
def readings(draw: Any) -> tuple[Reading, str, str, list[str]]:
    """A reading with what uplink_message takes beside it: gateway id, device name, tags."""
    eui = draw(st.binary(min_size=8, max_size=8))
    gw = draw(st.sampled_from(["fife-ps-017", "b827ebfffe6c1a2b", "gw"]))
    fcnt = draw(st.integers(0, 2**32 - 1))
    r = Reading(
        id=draw(
            st.one_of(
                st.just(reading_id(eui, "8f14e45f", fcnt)),  # a session id
                st.just(reading_id(eui, "8f14e45f.r2", fcnt)),  # after two counter resets
                st.just(f"{gw}:{eui.hex()}:{fcnt}"),  # the form made before 2026-12
                st.text(max_size=30),
            )
        ),
        dev_eui=eui,
        dev_addr=draw(st.binary(min_size=4, max_size=4)),
        fcnt=fcnt,
        f_port=draw(st.one_of(st.none(), st.integers(1, 223))),
        payload=draw(st.binary(max_size=64)),
        time=draw(st.floats(0, 4e9)),
        time_valid=draw(st.booleans()),
        confirmed=draw(st.booleans()),
        codec=draw(st.sampled_from(["", "cayenne-lpp", "elsys"])),
        measurements=draw(st.dictionaries(st.text(max_size=16), st.floats(-1e6, 1e6))),
        object=draw(st.dictionaries(st.text(max_size=16), json_value, max_size=5)),
        rx=tuple(draw(st.lists(rx_infos(), max_size=3))),
        decode_error=draw(st.one_of(st.none(), st.text(max_size=20))),
    )
    tags = draw(st.lists(st.text(max_size=10), max_size=3))
    return r, gw, draw(st.text(max_size=16)), tags


def uplink_bodies() -> st.SearchStrategy[str]:
    return readings().map(lambda a: dumps(uplink_message(*a)))


@settings(max_examples=150, deadline=None)
@given(st.lists(readings(), min_size=1, max_size=12))
def test_ingest_items_are_the_generic_encoding(rs: list[Any]) -> None:
    """uplink_item (made at ingest from the reading, with cached device, gateway and radio
    pieces) writes exactly what cbor_item writes from the message dict, and a batch of them
    decodes to the JSON messages."""
    items = [uplink_item(*a) for a in rs]
    assert items == [cbor_item(uplink_message(*a)) for a in rs]
    want = [json.loads(dumps(uplink_message(*a))) for a in rs]
    assert decode_payload(encode_batch(items), "cbor") == want
    assert [json.loads(item_json(i)) for i in items] == want  # format switched to JSON
    assert decode_payload(encode_single(items[0], "json"), "json") == want[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(uplink_bodies(), min_size=1, max_size=12))
def test_batch_and_single_round_trip_to_the_json_messages(bodies: list[str]) -> None:
    want = [json.loads(b) for b in bodies]
    assert decode_payload(encode_batch(bodies), "cbor") == want
    for b, w in zip(bodies, want, strict=True):
        assert decode_payload(encode_single(b, "cbor"), "cbor") == w


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=20),
    st.sampled_from(["raised", "cleared"]),
    st.floats(-1e6, 1e6),
    st.floats(0, 4e9),
    st.dictionaries(st.text(max_size=10), json_value, max_size=4),
)
def test_alerts_and_events_round_trip(
    rule: str, state: str, value: float, t: float, data: dict[str, Any]
) -> None:
    a = Alert(
        id=f"{rule}:1",
        dev_eui=bytes.fromhex("70b3d57ed0000001"),
        rule=rule,
        state=state,
        severity="warning",
        measurement="temperature_c",
        value=value,
        time=t,
        message="m",
    )
    for msg in (alert_message(a), event_message("e1", "data_dropped", t, data)):
        body = dumps(msg)
        assert decode_payload(encode_single(body, "cbor"), "cbor") == json.loads(body)


def _reading(i: int) -> str:
    return dumps(uplink_message(*_reading_args(i)))


def _reading_args(i: int) -> tuple[Reading, str, str, tuple[str, ...]]:
    eui = (0x70B3D57ED0000000 + i % 7).to_bytes(8, "big")
    rx = RxInfo(
        gateway_id="b827ebfffe6c1a2b",
        rx_mono=0.0,
        rx_wall=1_732_520_000.123456 + i,
        rssi_dbm=-70 - i % 30,
        snr_db=8.5,
        freq_hz=868_100_000,
        sf=7,
        bw_khz=125,
        code_rate="4/5",
        channel=0,
        rf_chain=0,
        tmst=1_000_000 + i,
    )
    r = Reading(
        id=reading_id(eui, "8f14e45f", i),
        dev_eui=eui,
        dev_addr=bytes.fromhex("26011bda"),
        fcnt=i,
        f_port=1,
        payload=bytes([1, 0x67, 0, 200 + i % 50, 2, 0x68, 80]),
        time=1_732_520_000.323456 + i,
        time_valid=True,
        confirmed=False,
        codec="cayenne-lpp",
        measurements={"temperature_c": (200 + i % 50) / 10, "humidity_pct": 40.0},
        object={"temperature_1": (200 + i % 50) / 10, "humidity_2": 40.0},
        rx=(rx,),
    )
    return r, "fife-ps-017", "P7 classroom", ("fife", "school-017")


def test_a_stock_decoder_sees_labels_bytes_and_times() -> None:
    """What a consumer without our decoder gets from cbor2.loads: integer labels (the table in
    docs/store-and-forward.md), byte strings, datetimes; `id` as its session part only (the
    decoder rebuilds it), deviceInfo.devEui left out."""
    body = _reading(3)
    j = json.loads(body)
    raw = cbor2.loads(encode_single(body, "cbor"))
    assert all(isinstance(k, int) for k in raw), "every top-level key is a label"
    assert LABELS["id"] not in raw
    assert raw[LABELS["devEui"]] == bytes.fromhex(j["devEui"])
    assert raw[LABELS["devAddr"]] == bytes.fromhex("26011bda")
    assert raw[LABELS["data"]] == base64.b64decode(j["data"])
    assert raw[LABELS["gatewayId"]] == "fife-ps-017", "not hex: stays text"
    assert raw[LABELS["time"]] == datetime.datetime(
        2024, 11, 25, 7, 33, 23, 323456, tzinfo=datetime.UTC
    )
    assert LABELS["devEui"] not in raw[LABELS["deviceInfo"]]
    rx = raw[LABELS["rxInfo"]][0]
    assert rx[LABELS["gatewayId"]] == bytes.fromhex("b827ebfffe6c1a2b")
    assert rx[LABELS["context"]] == (1_000_003).to_bytes(4, "big")
    assert raw[LABELS["object"]] == j["object"], "codec keys stay text"
    assert raw[LABELS["session"]] == bytes.fromhex("8f14e45f"), "the id's session part"
    assert {NAMES[k] for k in raw} == set(j) - {"id"} | {"session"}


def test_compact_next_to_json() -> None:
    bodies = [_reading(i) for i in range(250)]
    json_bytes = sum(len(b) for b in bodies)
    batch = encode_batch(bodies)
    assert len(batch) <= 0.25 * json_bytes, len(batch) / json_bytes
    single = sum(len(encode_single(b, "cbor")) for b in bodies)
    assert single <= 0.5 * json_bytes, single / json_bytes


def test_labels_are_stable() -> None:
    """The label table is a wire contract: the first entries must never move."""
    assert [LABELS[k] for k in ("id", "gatewayId", "time", "devEui", "fCnt", "data")] == [
        1,
        2,
        3,
        6,
        10,
        13,
    ]
    assert len(set(LABELS.values())) == len(LABELS)


def test_regions_and_repeats_cost_one_lookup_and_stay_exact() -> None:
    """Readings of a few devices through one gateway: after each device's first reading its
    names, EUIs and the gateway id go as references; the batch still decodes exactly."""
    items = [uplink_item(*_reading_args(i)) for i in range(40)]
    batch = encode_batch(items)
    assert decode_payload(batch, "cbor") == [
        json.loads(dumps(uplink_message(*_reading_args(i)))) for i in range(40)
    ]
    assert batch.count(b"P7 classroom") == 1
    assert batch.count(bytes.fromhex("b827ebfffe6c1a2b")) == 1


def test_non_finite_and_frozen_codec_values_match_the_json() -> None:
    """A codec's NaN/inf become null and its frozen maps and tuples plain maps and arrays,
    whichever format is configured."""
    r, gw, name, tags = _reading_args(1)
    nested = MappingProxyType({"a": (1, 2.5, MappingProxyType({"b": float("nan")}))})
    r = dataclasses.replace(r, object={"x": float("inf"), "n": nested, "raw": b"\x01\x02"})
    want = json.loads(dumps(uplink_message(r, gw, name, tags)))
    assert want["object"] == {"x": None, "n": {"a": [1, 2.5, {"b": None}]}, "raw": "0102"}
    assert decode_payload(encode_single(uplink_item(r, gw, name, tags), "cbor"), "cbor") == want


def test_an_item_too_long_for_offsets_keeps_its_own_namespace() -> None:
    """A huge codec object (> 32 KiB) is stored without string offsets, wrapped in a namespace
    of its own: readings before and after it in a batch still resolve their references."""
    big_r, gw, name, tags = _reading_args(2)
    big_r = dataclasses.replace(big_r, object={f"k{i}": "P7 classroom" * 3 for i in range(1500)})
    rs = [_reading_args(1), (big_r, gw, name, tags), _reading_args(3)]
    items = [uplink_item(*a) for a in rs]
    assert len(items[1]) > 32768
    want = [json.loads(dumps(uplink_message(*a))) for a in rs]
    assert decode_payload(encode_batch(items), "cbor") == want


def test_a_damaged_stored_item_is_refused_clearly() -> None:
    item = uplink_item(*_reading_args(1))
    for bad in (b"\x02" + item[1:], item[:-1], item[:3]):
        with pytest.raises(ValueError, match="stored CBOR item"):
            encode_batch([bad])


def test_bignums_and_their_bytes_keep_the_namespace_in_step() -> None:
    """An integer beyond 64 bits (the stdlib JSON path carries it) is a tag 2/3 byte string,
    which a decoder enters in the namespace like any other: references after it still resolve."""
    r, gw, name, tags = _reading_args(1)
    big = 2**70 + 5
    r = dataclasses.replace(r, object={"big": big, "neg": -big, "again": "P7 classroom"})
    items = [uplink_item(r, gw, name, tags), uplink_item(*_reading_args(2))] * 2
    back = decode_payload(encode_batch(items), "cbor")
    assert back[0]["object"] == {"big": big, "neg": -big, "again": "P7 classroom"}
    assert back[2] == back[0] and back[3] == back[1]
    assert back[1] == json.loads(dumps(uplink_message(*_reading_args(2))))
