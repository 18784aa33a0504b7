"""GWMP datagram parsing/building: every worked example of GWMP.md section 9, byte for byte."""

from __future__ import annotations

import base64
import contextlib
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_agent.errors import AgentError, FrameError
from gateway_agent.lorawan.radio import DownlinkTx
from gateway_agent.sources.gwmp_wire import (
    PullData,
    PushData,
    TxAck,
    decode_b64,
    parse_datagram,
    parse_rxpk,
    parse_stat,
    parse_stat_time,
    parse_tx_ack,
    pull_ack,
    pull_resp,
    push_ack,
)

EUI = "b827ebfffe6c1a2b"
PUSH_HEX = (
    "021c7a00b827ebfffe6c1a2b7b227278706b223a5b7b2274696d65223a22323032342d30352d31345430393a3132"
    "3a33312e3430323131375a222c22746d7374223a333531323334383631312c226368616e223a322c227266636822"
    "3a302c2266726571223a3836382e352c2273746174223a312c226d6f6475223a224c4f5241222c226461747222"
    "3a225346374257313235222c22636f6472223a22342f35222c2272737369223a2d37312c226c736e72223a392e"
    "322c2273697a65223a32302c2264617461223a2251466f38437961414b674142616b686637394c752f4276514b"
    "7a633d227d5d7d"
)
W1 = bytes.fromhex("405a3c0b26802a00016a485fefd2eefc1bd02b37")
PULL_RESP_W6_HEX = (
    "0255aa037b227478706b223a7b22696d6d65223a66616c73652c22746d7374223a333531333334383631312c2266"
    "726571223a3836382e352c2272666368223a302c22706f7765223a31342c226d6f6475223a224c4f5241222c22"
    "64617472223a225346374257313235222c22636f6472223a22342f35222c2269706f6c223a747275652c226e63"
    "7263223a747275652c2273697a65223a31322c2264617461223a2259466f38437959674277415553577475227d"
    "7d"
)
W6 = base64.b64decode("YFo8CyYgBwAUSWtu")
W5_ACCEPT = base64.b64decode("IDNElJVATXATk1f3aVx5jNjgsf5CFtaQJAyD2G7wBEl2")


def rxpk(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "tmst": 3512348611,
        "freq": 868.5,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "rssi": -71,
        "lsnr": 9.2,
        "size": 20,
        "data": "QFo8CyaAKgABakhf79Lu/BvQKzc=",
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def push(body: object, version: int = 2, token: bytes = b"\x1c\x7a") -> bytes:
    return bytes([version]) + token + b"\x00" + bytes.fromhex(EUI) + json.dumps(body).encode()


# ----------------------------------------------------------------------------- section 9


def test_push_data_example_parses_to_the_documented_record() -> None:
    data = bytes.fromhex(PUSH_HEX)
    assert len(data) == 234
    msg = parse_datagram(data)
    assert isinstance(msg, PushData)
    assert (msg.version, msg.token, msg.gateway_eui, msg.stat) == (2, b"\x1c\x7a", EUI, None)
    [(rx, phy)] = parse_rxpk(msg.rxpk[0], msg.gateway_eui, 5.0, 1715677951.5, "gw0")
    assert phy == W1
    assert rx.gateway_id == EUI
    assert rx.tmst == 3512348611
    assert rx.freq_hz == 868_500_000
    assert (rx.modulation, rx.sf, rx.bw_khz, rx.code_rate) == ("LORA", 7, 125, "4/5")
    assert (rx.rssi_dbm, rx.snr_db, rx.channel, rx.rf_chain) == (-71, 9.2, 2, 0)
    assert (rx.rx_mono, rx.rx_wall, rx.source) == (5.0, 1715677951.5, "gw0")
    assert rx.gw_time == "2024-05-14T09:12:31.402117Z"
    assert rx.antenna is None


def test_push_ack_and_pull_ack_examples() -> None:
    assert push_ack(2, bytes.fromhex("1c7a")).hex() == "021c7a01"
    msg = parse_datagram(bytes.fromhex("023e0102b827ebfffe6c1a2b"))
    assert msg == PullData(2, bytes.fromhex("3e01"), EUI)
    assert pull_ack(msg.version, msg.token).hex() == "023e0104"
    assert push_ack(1, b"\xff\x00").hex() == "01ff0001"  # v1 echoed, token bytes never swapped


def test_pull_resp_w6_bytes() -> None:
    tx = DownlinkTx(EUI, W6, 868_500_000, 7, 125, tmst=3512348611 + 1_000_000)
    assert pull_resp(2, bytes.fromhex("55aa"), tx).hex() == PULL_RESP_W6_HEX


@pytest.mark.parametrize(
    ("tmst", "freq_hz", "sf", "expect"),
    [
        (
            2005000000,
            868_100_000,
            10,
            '{"txpk":{"imme":false,"tmst":2005000000,"freq":868.1,"rfch":0,"powe":14,"modu":"LORA",'
            '"datr":"SF10BW125","codr":"4/5","ipol":true,"ncrc":true,"size":33,'
            '"data":"IDNElJVATXATk1f3aVx5jNjgsf5CFtaQJAyD2G7wBEl2"}}',
        ),
        (
            2006000000,
            869_525_000,
            12,
            '{"txpk":{"imme":false,"tmst":2006000000,"freq":869.525,"rfch":0,"powe":14,"modu":"LORA",'
            '"datr":"SF12BW125","codr":"4/5","ipol":true,"ncrc":true,"size":33,'
            '"data":"IDNElJVATXATk1f3aVx5jNjgsf5CFtaQJAyD2G7wBEl2"}}',
        ),
    ],
)
def test_join_accept_rx1_rx2_txpk(tmst: int, freq_hz: int, sf: int, expect: str) -> None:
    tx = DownlinkTx(EUI, W5_ACCEPT, freq_hz, sf, 125, tmst=tmst, purpose="join_accept")
    out = pull_resp(2, b"\x01\x02", tx)
    assert out[:4] == b"\x02\x01\x02\x03"
    assert out[4:].decode() == expect


def test_tmst_wrap() -> None:
    tx = DownlinkTx(EUI, W6, 868_100_000, 7, 125, tmst=4_294_000_000 + 5_000_000)
    assert tx.tmst == 4032704
    assert json.loads(pull_resp(2, b"\0\0", tx)[4:])["txpk"]["tmst"] == 4032704


def test_tx_ack_examples() -> None:
    ok = parse_tx_ack(bytes.fromhex("0255aa05b827ebfffe6c1a2b"))
    assert ok == TxAck(2, b"\x55\xaa", EUI, None)
    assert ok.ok
    bad = parse_tx_ack(
        bytes.fromhex(
            "0255aa05b827ebfffe6c1a2b7b227478706b5f61636b223a7b226572726f72223a22544f4f5f4c41"
            "5445227d7d"
        )
    )
    assert bad.error == "TOO_LATE"
    assert not bad.ok
    hdr = bytes.fromhex("0255aa05b827ebfffe6c1a2b")
    assert parse_tx_ack(hdr + b'{"txpk_ack":{"error":"NONE"}}').ok
    assert parse_tx_ack(hdr + b"{}").ok
    warn = parse_tx_ack(hdr + b'{"txpk_ack":{"warn":"TX_POWER","value":12}}')
    assert warn.ok
    assert warn.warn == "TX_POWER"


def test_stat_example() -> None:
    body = {
        "stat": {
            "time": "2024-05-14 09:12:30 GMT",
            "lati": 56.19612,
            "long": -3.01243,
            "alti": 32,
            "rxnb": 14,
            "rxok": 12,
            "rxfw": 12,
            "ackr": 100.0,
            "dwnb": 1,
            "txnb": 1,
            "temp": 31.5,
            "boot": "vendor key",
        }
    }
    msg = parse_datagram(push(body))
    assert isinstance(msg, PushData)
    assert msg.rxpk == ()
    s = parse_stat(msg.stat)
    assert s.time_epoch == 1715677950.0
    assert (s.lati, s.long, s.alti, s.rxnb, s.rxok, s.ackr, s.temp) == (
        56.19612,
        -3.01243,
        32,
        14,
        12,
        100.0,
        31.5,
    )
    assert "boot" not in s.as_dict()
    assert s.as_dict()["time"] == "2024-05-14 09:12:30 GMT"


def test_stat_is_tolerant() -> None:
    s = parse_stat({"time": "yesterday", "rxnb": "many", "ackr": 99, "lati": None})
    assert s.time == "yesterday"
    assert s.time_epoch is None
    assert s.rxnb is None
    assert s.ackr == 99
    assert parse_stat([1, 2]).as_dict() == {}
    assert parse_stat_time("2024-05-14T09:12:30Z") == 1715677950.0
    assert parse_stat_time("2024-13-40 09:12:30 GMT") is None


def test_rsig_variant_yields_one_record_per_antenna() -> None:
    item = rxpk(
        rssi=None,
        lsnr=None,
        rsig=[
            {"ant": 0, "chan": 2, "rssic": -71, "lsnr": 9.2},
            {"ant": 1, "chan": 2, "rssic": -84, "lsnr": 2.5},
        ],
    )
    recs = parse_rxpk(item, EUI, 1.0, 2.0, "s")
    assert [(r.antenna, r.channel, r.rssi_dbm, r.snr_db) for r, _ in recs] == [
        (0, 2, -71, 9.2),
        (1, 2, -84, 2.5),
    ]
    assert all(p == W1 and r.tmst == 3512348611 for r, p in recs)


# ----------------------------------------------------------------------------- rxpk checks


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"stat": -1}, "crc_bad"),
        ({"stat": 0}, "crc_none"),
        ({"stat": None}, "bad_rxpk"),
        ({"stat": "1"}, "bad_rxpk"),
        ({"stat": True}, "bad_rxpk"),
        ({"modu": "LORA2"}, "bad_modu"),
        ({"datr": 50000}, "bad_datr"),
        ({"datr": "SF7"}, "bad_datr"),
        ({"datr": "SF13BW125"}, "bad_datr"),
        ({"modu": "FSK", "datr": "SF7BW125"}, "bad_datr"),
        ({"data": "QFo8CyaAKgABakhf79Lu-BvQKzc="}, "bad_base64"),
        ({"data": "QFo8CyaAKgABakhf79Lu/BvQKzc=!"}, "bad_base64"),
        ({"data": 12}, "bad_base64"),
        ({"data": None}, "bad_base64"),
        ({"size": 21}, "size_mismatch"),
        ({"size": None}, "bad_rxpk"),
        ({"size": 3, "data": "AAAA"}, "payload_too_short"),
        ({"size": 0, "data": ""}, "payload_too_short"),
        ({"freq": None}, "bad_freq"),
        ({"freq": "868.1"}, "bad_freq"),
        ({"freq": 1e400}, "bad_freq"),
        ({"tmst": -1}, "bad_rxpk"),
        ({"tmst": 2**32}, "bad_rxpk"),
        ({"rsig": "x"}, "bad_rxpk"),
    ],
)
def test_bad_rxpk_reasons(over: dict[str, object], reason: str) -> None:
    with pytest.raises(FrameError) as ei:
        parse_rxpk(rxpk(**over), EUI, 0.0, 0.0, "s")
    assert ei.value.reason == reason


def test_rxpk_optional_fields_and_fsk() -> None:
    [(rx, _)] = parse_rxpk(rxpk(rssi=None, lsnr=None, tmst=None, codr=None), EUI, 0, 0, "s")
    assert rx.rssi_dbm is None
    assert rx.snr_db is None
    assert rx.tmst is None
    assert rx.channel is None
    [(fsk, _)] = parse_rxpk(rxpk(modu="FSK", datr=50000, lsnr=None), EUI, 0, 0, "s")
    assert (fsk.modulation, fsk.bitrate, fsk.sf, fsk.code_rate, fsk.datr) == (
        "FSK",
        50000,
        None,
        None,
        50000,
    )
    # freq in MHz is rounded, never truncated (pitfall 9)
    [(r2, _)] = parse_rxpk(rxpk(freq=867.1, unknown_key=[1]), EUI, 0, 0, "s")
    assert r2.freq_hz == 867_100_000


def test_base64_padding_optional_but_strict() -> None:
    assert decode_b64("QFo8CyaAKgABakhf79Lu/BvQKzc") == W1
    assert decode_b64("QFo8CyaAKgABakhf79Lu/BvQKzc=") == W1
    for bad in ("QFo8_yaA", "QQ===", "Q", "QF o8", "QFo8CyaAKgABakhf79Lu/BvQKzc==="):
        with pytest.raises(FrameError):
            decode_b64(bad)


def _rule_based_b64(s: str) -> bytes | None:
    """The rules of pitfall 7 without the C fast path: alphabet, 0-2 '=', no 4k+1 length."""
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", s):
        return None
    core = s.rstrip("=")
    if len(core) % 4 == 1:
        return None
    return base64.b64decode(core + "=" * (-len(core) % 4), validate=True)


@settings(max_examples=400)
@given(
    st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ é",
        max_size=24,
    )
    | st.binary(max_size=18).map(lambda b: base64.b64encode(b).decode())
)
def test_base64_fast_path_agrees_with_the_rules(s: str) -> None:
    want = _rule_based_b64(s)
    if want is None:
        with pytest.raises(FrameError):
            decode_b64(s)
    else:
        assert decode_b64(s) == want


# ----------------------------------------------------------------------------- datagram checks


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (b"\x02\x00\x00", "too_short"),
        (b"\x03\x00\x00\x02" + bytes(8), "bad_version"),
        (b"\x02\x00\x00\x07" + bytes(8), "unknown_type"),
        (b"\x02\x00\x00\x01", "server_type"),
        (b"\x02\x00\x00\x03{}", "server_type"),
        (b"\x02\x00\x00\x04", "server_type"),
        (b"\x02\x00\x00\x02" + bytes(7), "bad_length"),
        (b"\x02\x00\x00\x02" + bytes(9), "bad_length"),
        (b"\x02\x00\x00\x00" + bytes(4), "bad_length"),
        (b"\x02\x00\x00\x00" + bytes(8), "bad_json"),
        (b"\x02\x00\x00\x00" + bytes(8) + b"[1]", "bad_json"),
        (b"\x02\x00\x00\x00" + bytes(8) + b'{"rxpk":{}}', "bad_json"),
        (b"\x02\x00\x00\x00" + bytes(8) + b'{"rxpk":[{"rssi":NaN}]}', "bad_json"),
        (b"\x02\x00\x00\x00" + bytes(8) + b'{"x":Infinity}', "bad_json"),
        (b"\x02\x00\x00\x00" + bytes(8) + b"\xff\xfe{}", "bad_json"),
        (b"\x02\x00\x00\x05" + bytes(8) + b"{oops", "bad_json"),
    ],
)
def test_bad_datagrams(data: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as ei:
        parse_datagram(data)
    assert ei.value.reason == reason


def test_push_data_shapes() -> None:
    empty = parse_datagram(push({}))
    assert isinstance(empty, PushData)
    assert empty.rxpk == ()
    assert empty.stat is None
    many = parse_datagram(push({"rxpk": [rxpk(), rxpk(stat=-1), "junk", rxpk(tmst=7)]}))
    assert isinstance(many, PushData)
    assert len(many.rxpk) == 4
    good = []
    for item in many.rxpk:
        with contextlib.suppress(FrameError):
            good.extend(parse_rxpk(item, EUI, 0, 0, "s"))
    assert [r.tmst for r, _ in good] == [3512348611, 7]


def test_builders_reject_bad_header_values() -> None:
    with pytest.raises(ValueError, match="version"):
        push_ack(3, b"\0\0")
    with pytest.raises(ValueError, match="token"):
        pull_ack(2, b"\0")


def test_immediate_txpk_has_no_tmst_and_hz_resolution() -> None:
    tx = DownlinkTx(EUI, W6, 869_525_001, 12, 125, immediate=True, power_dbm=27)
    t = json.loads(pull_resp(1, b"\0\0", tx)[4:])["txpk"]
    assert t["imme"] is True
    assert "tmst" not in t
    assert t["powe"] == 27
    assert t["freq"] == 869.525001


# ----------------------------------------------------------------------------- properties


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_agent_errors(data: bytes) -> None:
    try:
        msg = parse_datagram(data)
    except AgentError:
        return
    if isinstance(msg, PushData):
        for item in msg.rxpk:
            with contextlib.suppress(AgentError):
                parse_rxpk(item, msg.gateway_eui, 0, 0, "s")
        parse_stat(msg.stat)


_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_json = _scalar | st.lists(_scalar, max_size=3) | st.dictionaries(st.text(max_size=5), _scalar)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "stat": _json | st.sampled_from([1, -1, 0]),
            "modu": _json | st.sampled_from(["LORA", "FSK"]),
            "datr": _json | st.sampled_from(["SF7BW125", "SF12BW500", 50000]),
            "freq": _json | st.floats(100, 3000),
            "size": _json | st.integers(0, 300),
            "data": _json | st.sampled_from(["QFo8CyaAKgABakhf79Lu/BvQKzc=", "AAAA", "@@"]),
            "tmst": _json,
            "rssi": _json,
            "lsnr": _json,
            "chan": _json,
            "rsig": _json,
            "time": _json,
        },
    )
)
def test_arbitrary_rxpk_raise_only_frame_errors(item: dict[str, object]) -> None:
    try:
        recs = parse_rxpk(item, EUI, 0, 0, "s")
    except FrameError:
        return
    assert recs
    assert all(len(p) >= 12 for _, p in recs)
