"""PHYPayload codec: the LORAWAN.md vectors both ways, error reasons, round trips, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.errors import AgentError, FrameError
from gateway_agent.lorawan.frame import (
    DataFrame,
    JoinAcceptRaw,
    JoinRequest,
    MType,
    ProprietaryFrame,
    build_data_frame,
    parse_phy,
)
from gateway_agent.lorawan.session import DeviceSession, UplinkAccepted, verify_uplink
from hil import lorawan_crypto as hil_crypto

H = bytes.fromhex
NWK = H("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = H("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
ADDR = H("260b3c5a")

W1 = "405a3c0b26802a00016a485fefd2eefc1bd02b37"
W2 = "805a3c0b26852b00030706fe0a027a95da3efd9316a6dfa8cf89ad3b8792b4c4be0dacf9cbcc"
W3 = "405a3c0b26002c000045e97b37f25b6d35"
W4 = "405a3c0b26800500015b3f55cd7c3d581a"
W5_UP = "40b2a1f300800000027278bb49fbdf"
W6 = "605a3c0b2620070014496b6e"
W5_NWK = H("1b82c6739d26eb2f115f54fdbb9d3655")
W5_APP = H("2234dd7ac2b03c76bbee744098bb0d57")


def test_mtype_labels() -> None:
    assert [m.label for m in MType] == [
        "JoinRequest",
        "JoinAccept",
        "UnconfirmedDataUp",
        "UnconfirmedDataDown",
        "ConfirmedDataUp",
        "ConfirmedDataDown",
        "RFU",
        "Proprietary",
    ]
    assert MType.ConfirmedDataUp.uplink and not MType.ConfirmedDataDown.uplink


@pytest.mark.parametrize(
    ("expected", "kwargs"),
    [
        (
            W1,
            dict(
                mtype=MType.UnconfirmedDataUp,
                fcnt32=42,
                f_port=1,
                payload=H("016700e1026850"),
                adr=True,
            ),
        ),
        (
            W2,
            dict(
                mtype=MType.ConfirmedDataUp,
                fcnt32=43,
                f_port=2,
                payload=bytes(range(0x30, 0x44)),
                fopts=H("030706fe0a"),
                adr=True,
            ),
        ),
        (W3, dict(mtype=MType.UnconfirmedDataUp, fcnt32=44, f_port=0, payload=H("0206fe0a"))),
        (
            W4,
            dict(
                mtype=MType.UnconfirmedDataUp,
                fcnt32=65541,
                f_port=1,
                payload=H("016700e1"),
                adr=True,
            ),
        ),
        (W6, dict(mtype=MType.UnconfirmedDataDown, fcnt32=7, ack=True)),
    ],
)
def test_build_reproduces_vectors(expected: str, kwargs: dict[str, object]) -> None:
    mtype = kwargs.pop("mtype")
    fcnt = kwargs.pop("fcnt32")
    out = build_data_frame(mtype, ADDR, fcnt, nwk_s_key=NWK, app_s_key=APP, **kwargs)  # type: ignore[arg-type]
    assert out.hex() == expected


def test_build_w5_first_uplink() -> None:
    out = build_data_frame(
        MType.UnconfirmedDataUp,
        H("00f3a1b2"),
        0,
        nwk_s_key=W5_NWK,
        app_s_key=W5_APP,
        f_port=2,
        payload=H("0bb8"),
        adr=True,
    )
    assert out.hex() == W5_UP


def test_parse_w2_fields() -> None:
    f = parse_phy(H(W2))
    assert isinstance(f, DataFrame)
    assert f.mtype is MType.ConfirmedDataUp and f.uplink and f.confirmed
    assert f.dev_addr == ADDR
    assert (f.adr, f.adr_ack_req, f.ack, f.f_pending, f.class_b) == (
        True,
        False,
        False,
        False,
        False,
    )
    assert f.fopts.hex() == "030706fe0a"
    assert f.fcnt16 == 43 and f.f_port == 2
    assert f.frm_payload.hex() == "7a95da3efd9316a6dfa8cf89ad3b8792b4c4be0d"
    assert f.mic.hex() == "acf9cbcc"
    assert f.msg == H(W2)[:-4] and f.raw == H(W2)


def test_parse_w6_downlink_without_fport() -> None:
    f = parse_phy(H(W6))
    assert isinstance(f, DataFrame)
    assert f.mtype is MType.UnconfirmedDataDown and not f.uplink
    assert f.ack and f.f_port is None and f.frm_payload == b"" and f.fcnt16 == 7


def test_parse_empty_payload_on_port_is_legal() -> None:
    raw = build_data_frame(MType.UnconfirmedDataUp, ADDR, 3, nwk_s_key=NWK, app_s_key=APP, f_port=1)
    f = parse_phy(raw)
    assert isinstance(f, DataFrame) and f.f_port == 1 and f.frm_payload == b""


def test_parse_join_messages_and_proprietary() -> None:
    jr = parse_phy(H("00341200d07ed5b37030051c000ba304000100a028d19c"))
    assert isinstance(jr, JoinRequest)
    assert jr.join_eui.hex() == "70b3d57ed0001234" and jr.dev_eui.hex() == "0004a30b001c0530"
    assert jr.dev_nonce == 1 and jr.mic.hex() == "a028d19c" and jr.mtype is MType.JoinRequest
    ja = parse_phy(H("201ad6c982ea9bbca25da0e4697171ec3c"))
    assert isinstance(ja, JoinAcceptRaw) and ja.mtype is MType.JoinAccept
    p = parse_phy(H("e0010203"))
    assert isinstance(p, ProprietaryFrame) and p.payload == H("010203")


@pytest.mark.parametrize(
    ("hex_", "reason"),
    [
        ("", "too_short"),
        ("405a3c0b26802a0001", "too_short"),
        ("41" + W1[2:], "bad_major"),
        ("c0" + W1[2:], "rfu_mtype"),
        ("00341200", "bad_length"),
        ("2000", "bad_length"),
        ("405a3c0b260f2a00016a485f1bd02b37", "fopts_truncated"),
        ("405a3c0b26012a000300aabbccdd", "fport0_with_fopts"),
        ("40" + "00" * 255, "too_long"),
    ],
)
def test_parse_errors_have_fine_reasons(hex_: str, reason: str) -> None:
    with pytest.raises(FrameError) as ei:
        parse_phy(H(hex_))
    assert ei.value.reason == reason


def test_rfu_fport_parses_and_is_rejected_by_verify() -> None:
    raw = build_data_frame(
        MType.UnconfirmedDataUp, ADDR, 1, nwk_s_key=NWK, app_s_key=APP, f_port=230, payload=b"x"
    )
    f = parse_phy(raw)
    assert isinstance(f, DataFrame) and f.f_port == 230
    s = DeviceSession(bytes(8), ADDR, NWK, APP, fcnt_up=None)
    res = verify_uplink(f, [s], 16384)
    assert getattr(res, "reason", None) == "fport_rfu"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(f_port=None, payload=b"x"),
        dict(f_port=0, fopts=b"\x02"),
        dict(fopts=bytes(16)),
        dict(f_port=1, payload=bytes(243)),
        dict(f_port=256, payload=b""),
    ],
)
def test_build_refuses_impossible_frames(kwargs: dict[str, object]) -> None:
    with pytest.raises(FrameError) as ei:
        build_data_frame(MType.UnconfirmedDataUp, ADDR, 1, nwk_s_key=NWK, app_s_key=APP, **kwargs)  # type: ignore[arg-type]
    assert ei.value.reason == "bad_build"


def test_build_refuses_non_data_mtype() -> None:
    with pytest.raises(FrameError):
        build_data_frame(MType.JoinRequest, ADDR, 1, nwk_s_key=NWK)


data_mtypes = st.sampled_from(
    [
        MType.UnconfirmedDataUp,
        MType.UnconfirmedDataDown,
        MType.ConfirmedDataUp,
        MType.ConfirmedDataDown,
    ]
)


@st.composite
def frames(draw: st.DrawFn) -> dict[str, object]:
    f_port = draw(st.one_of(st.none(), st.integers(0, 255)))
    fopts = b"" if f_port == 0 else draw(st.binary(max_size=15))
    room = 255 - 12 - len(fopts) - 1
    payload = b"" if f_port is None else draw(st.binary(max_size=room))
    return dict(
        mtype=draw(data_mtypes),
        dev_addr=draw(st.binary(min_size=4, max_size=4)),
        fcnt32=draw(st.integers(0, 0xFFFFFFFF)),
        nwk_s_key=draw(st.binary(min_size=16, max_size=16)),
        app_s_key=draw(st.binary(min_size=16, max_size=16)),
        f_port=f_port,
        payload=payload,
        fopts=fopts,
        adr=draw(st.booleans()),
        adr_ack_req=draw(st.booleans()),
        ack=draw(st.booleans()),
        f_pending=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None)
@given(frames())
def test_build_parse_round_trip_and_hil_cross_check(p: dict[str, object]) -> None:
    kw = dict(p)
    mtype, addr, fcnt = kw.pop("mtype"), kw.pop("dev_addr"), kw.pop("fcnt32")
    raw = build_data_frame(mtype, addr, fcnt, **kw)  # type: ignore[arg-type]
    f = parse_phy(raw)
    assert isinstance(f, DataFrame)
    assert f.mtype == mtype and f.dev_addr == addr and f.fcnt16 == fcnt & 0xFFFF  # type: ignore[operator]
    assert (f.adr, f.adr_ack_req, f.ack, f.f_pending) == (
        p["adr"],
        p["adr_ack_req"],
        p["ack"],
        p["f_pending"],
    )
    assert f.fopts == p["fopts"] and f.f_port == p["f_port"] and f.raw == raw
    assert len(f.frm_payload) == len(p["payload"])  # type: ignore[arg-type]
    # The simulator's independent implementation opens what we built.
    opened = hil_crypto.open_data_frame(raw, p["nwk_s_key"], p["app_s_key"], fcnt)  # type: ignore[arg-type]
    assert opened.payload == p["payload"] and opened.fcnt32 == fcnt


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_frame_error(data: bytes) -> None:
    reason = None
    try:
        f = parse_phy(data)
    except FrameError as e:  # AgentError subclass; any other exception fails the test
        reason = e.reason
    if reason is None:
        assert f.raw == data
    else:
        assert reason and issubclass(FrameError, AgentError)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=8))
def test_hil_encoder_uplinks_verify(payload: bytes) -> None:
    raw = hil_crypto.build_data_frame(2, ADDR, 70000, NWK, APP, f_port=5, payload=payload, adr=True)
    f = parse_phy(raw)
    assert isinstance(f, DataFrame)
    res = verify_uplink(f, [DeviceSession(bytes(8), ADDR, NWK, APP, fcnt_up=69990)], 16384)
    assert isinstance(res, UplinkAccepted) and res.payload == payload and res.fcnt == 70000
