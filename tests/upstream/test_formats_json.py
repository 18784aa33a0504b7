"""The JSON text of upstream messages: frozen codec output encodes like plain data, every value
round-trips, and what orjson refuses still encodes (the stdlib takes over)."""

from __future__ import annotations

import json
import math
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from decoders.types import freeze
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.model import Reading
from gateway_agent.upstream.formats import dumps, uplink_message

text = st.text(max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
json_leaf = st.none() | st.booleans() | st.integers(-(2**80), 2**80) | finite | text
json_value = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(text, kids, max_size=3),
    max_leaves=8,
)
rx_infos = st.builds(
    RxInfo,
    gateway_id=st.sampled_from(["b827ebfffe6c1a2b", "serial:/dev/ttyUSB0", 'gw-ü"x']),
    rx_mono=st.just(0.0),
    rx_wall=st.floats(0, 4e9),
    freq_hz=st.integers(100_000_000, 3_000_000_000),
    modulation=st.sampled_from(["LORA", "FSK"]),
    sf=st.none() | st.integers(5, 12),
    bw_khz=st.none() | st.sampled_from([125, 250, 500]),
    bitrate=st.none() | st.integers(1, 50_000),
    rssi_dbm=st.none() | finite,
    snr_db=st.none() | finite,
    channel=st.none() | st.integers(0, 255),
    tmst=st.none() | st.integers(0, 0xFFFFFFFF),
    gw_time=st.none() | text,
)


def _plain(v: object) -> object:
    if isinstance(v, MappingProxyType | dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    return v


@settings(max_examples=300, deadline=None)
@given(
    obj=st.dictionaries(text, json_value, max_size=4),
    extras=st.dictionaries(text, json_value, max_size=3),
    measurements=st.dictionaries(text, finite, max_size=3),
    rx=st.lists(rx_infos, max_size=3),
    name=text,
    tags=st.lists(text, max_size=3),
)
def test_frozen_codec_output_encodes_like_plain_data_and_round_trips(
    obj: dict[str, object],
    extras: dict[str, object],
    measurements: dict[str, float],
    rx: list[RxInfo],
    name: str,
    tags: list[str],
) -> None:
    def reading(o: object, e: object) -> Reading:
        return Reading(
            id="gw:70b3d57ed0000001:7",
            dev_eui=bytes.fromhex("70b3d57ed0000001"),
            dev_addr=bytes.fromhex("26011bda"),
            fcnt=7,
            f_port=1,
            payload=b"\x01\x02",
            time=1_750_000_000.25,
            codec="cayenne-lpp",
            measurements=measurements,
            object=o,  # type: ignore[arg-type]
            extras=e,  # type: ignore[arg-type]
            rx=tuple(rx),
        )

    frozen = dumps(uplink_message(reading(freeze(obj), freeze(extras)), "gw", name, tags))
    plain = dumps(uplink_message(reading(obj, extras), "gw", name, tags))
    assert frozen == plain
    back = json.loads(frozen)
    assert back["object"] == _plain(obj)
    assert back["extras" if extras else "object"] == _plain(extras or obj)
    assert back["measurements"] == measurements
    assert back["deviceInfo"] == {"devEui": "70b3d57ed0000001", "deviceName": name, "tags": tags}
    assert [x["gatewayId"] for x in back["rxInfo"]] == [x.gateway_id for x in rx]


def test_what_orjson_refuses_still_encodes() -> None:
    big = {"count": 2**70, "nested": {"n": -(2**65)}}
    assert json.loads(dumps(big)) == big
    assert json.loads(dumps({1: "x"})) == {"1": "x"}


def test_non_finite_numbers_become_null_instead_of_losing_the_reading() -> None:
    out = json.loads(dumps({"a": math.nan, "b": math.inf, "c": 1.5}))
    assert out == {"a": None, "b": None, "c": 1.5}


def test_text_is_utf8_not_escaped() -> None:
    assert dumps({"name": "Rhôs-on-Sea ü"}) == '{"name":"Rhôs-on-Sea ü"}'
