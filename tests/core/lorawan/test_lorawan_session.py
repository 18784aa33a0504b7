"""verify_uplink: the uplink decision over real frames (LORAWAN.md 3-6, W1-W7)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.errors import FrameError
from gateway_agent.lorawan.frame import DataFrame, MType, build_data_frame, parse_phy
from gateway_agent.lorawan.session import (
    DeviceSession,
    UplinkAccepted,
    UplinkRejected,
    UplinkRetransmission,
    verify_uplink,
)

H = bytes.fromhex
NWK = H("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = H("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
ADDR = H("260b3c5a")
EUI = H("0004a30b001c0531")
GAP = 16384

W1 = "405a3c0b26802a00016a485fefd2eefc1bd02b37"
W2 = "805a3c0b26852b00030706fe0a027a95da3efd9316a6dfa8cf89ad3b8792b4c4be0dacf9cbcc"
W3 = "405a3c0b26002c000045e97b37f25b6d35"
W4 = "405a3c0b26800500015b3f55cd7c3d581a"
W7 = "405a3c0b26802a00016a485fefd2eefd1bd02b37"


def session(fcnt_up: int | None = None, **kw: object) -> DeviceSession:
    return DeviceSession(EUI, ADDR, NWK, APP, fcnt_up=fcnt_up, **kw)  # type: ignore[arg-type]


def frame(hex_: str) -> DataFrame:
    f = parse_phy(H(hex_))
    assert isinstance(f, DataFrame)
    return f


def test_w1_accepted_on_a_fresh_session() -> None:
    s = session()
    res = verify_uplink(frame(W1), [s], GAP)
    assert isinstance(res, UplinkAccepted)
    assert res.fcnt == 42 and res.f_port == 1 and res.payload.hex() == "016700e1026850"
    assert not res.confirmed and res.adr and not res.adr_ack_req and not res.fcnt_reset
    assert res.mac_commands == ()
    assert res.session == s and res.new_session == replace(s, fcnt_up=42)


def test_w2_confirmed_with_fopts_mac_commands() -> None:
    res = verify_uplink(frame(W2), [session(42)], GAP)
    assert isinstance(res, UplinkAccepted) and res.confirmed and res.fcnt == 43
    assert res.payload == bytes(range(0x30, 0x44))
    assert [(c.name, dict(c.fields)) for c in res.mac_commands] == [
        ("LinkADRAns", {"power_ack": True, "data_rate_ack": True, "channel_mask_ack": True}),
        ("DevStatusAns", {"battery": 254, "margin": 10}),
    ]


def test_w3_fport0_mac_commands_decrypted_with_nwk_key() -> None:
    res = verify_uplink(frame(W3), [session(43)], GAP)
    assert isinstance(res, UplinkAccepted) and res.f_port == 0
    assert res.payload.hex() == "0206fe0a"
    assert [c.name for c in res.mac_commands] == ["LinkCheckReq", "DevStatusAns"]


def test_w4_counter_above_65535_reconstructed() -> None:
    res = verify_uplink(frame(W4), [session(65530)], GAP)
    assert isinstance(res, UplinkAccepted) and res.fcnt == 65541
    assert res.payload.hex() == "016700e1" and res.new_session.fcnt_up == 65541
    # A fresh session guesses MSB 0: the MIC says no.
    assert verify_uplink(frame(W4), [session()], GAP) == UplinkRejected("mic")


def test_w5_first_uplink_of_an_otaa_session() -> None:
    s = DeviceSession(
        H("0004a30b001c0530"),
        H("00f3a1b2"),
        H("1b82c6739d26eb2f115f54fdbb9d3655"),
        H("2234dd7ac2b03c76bbee744098bb0d57"),
        fcnt_up=None,
    )
    res = verify_uplink(frame("40b2a1f300800000027278bb49fbdf"), [s], GAP)
    assert isinstance(res, UplinkAccepted) and res.fcnt == 0 and res.payload == H("0bb8")


def test_w7_flipped_bit_is_rejected() -> None:
    assert verify_uplink(frame(W7), [session(41)], GAP) == UplinkRejected("mic")


def test_retransmission_and_replay() -> None:
    res = verify_uplink(frame(W1), [session(42)], GAP)
    assert res == UplinkRetransmission(session(42), 42, False)
    res2 = verify_uplink(frame(W2), [session(43)], GAP)
    assert isinstance(res2, UplinkRetransmission) and res2.confirmed
    assert verify_uplink(frame(W1), [session(50)], GAP) == UplinkRejected("replay")
    # A retransmission claim with a broken MIC is not a retransmission.
    assert verify_uplink(frame(W7), [session(42)], GAP) == UplinkRejected("mic")


def test_gap_beyond_maximum_is_replay() -> None:
    assert verify_uplink(frame(W1), [session(41)], 0) == UplinkRejected("replay")
    assert isinstance(verify_uplink(frame(W1), [session(41)], 1), UplinkAccepted)


def test_unknown_device_and_other_dev_addr() -> None:
    assert verify_uplink(frame(W1), [], GAP) == UplinkRejected("unknown_device")
    other = DeviceSession(EUI, H("260b3c5b"), NWK, APP, fcnt_up=None)
    assert verify_uplink(frame(W1), [other], GAP) == UplinkRejected("unknown_device")


def test_exhausted_session() -> None:
    raw = build_data_frame(MType.UnconfirmedDataUp, ADDR, 0, nwk_s_key=NWK, app_s_key=APP)
    assert verify_uplink(frame(raw.hex()), [session(0xFFFFFFFF)], GAP) == UplinkRejected(
        "exhausted"
    )


def test_downlink_frames_are_not_uplinks() -> None:
    assert verify_uplink(frame("605a3c0b2620070014496b6e"), [session()], GAP) == UplinkRejected(
        "not_uplink"
    )


def test_shared_dev_addr_picks_the_session_whose_mic_verifies() -> None:
    impostor = DeviceSession(H("1111111111111111"), ADDR, APP, NWK, fcnt_up=None)
    real = session(40)
    res = verify_uplink(frame(W1), [impostor, real], GAP)
    assert isinstance(res, UplinkAccepted) and res.session is real
    res = verify_uplink(frame(W1), [real, impostor], GAP)
    assert isinstance(res, UplinkAccepted) and res.session is real
    assert verify_uplink(frame(W1), [impostor], GAP) == UplinkRejected("mic")
    # One collider says replay, the other fails the MIC: replay is the more telling reason.
    assert verify_uplink(frame(W1), [impostor, session(50)], GAP) == UplinkRejected("replay")


def test_relaxed_counter_accepts_a_reset_with_valid_mic() -> None:
    raw = build_data_frame(
        MType.UnconfirmedDataUp, ADDR, 3, nwk_s_key=NWK, app_s_key=APP, f_port=1, payload=b"hi"
    )
    strict = session(10_000)
    assert verify_uplink(frame(raw.hex()), [strict], GAP) == UplinkRejected("replay")
    relaxed = session(10_000, relaxed_fcnt=True)
    res = verify_uplink(frame(raw.hex()), [relaxed], GAP)
    assert isinstance(res, UplinkAccepted) and res.fcnt == 3 and res.fcnt_reset
    assert res.payload == b"hi" and res.new_session.fcnt_up == 3
    # Past 65535 the normal path mis-guesses the MSB; the reset candidate still verifies.
    raw2 = build_data_frame(MType.UnconfirmedDataUp, ADDR, 4500, nwk_s_key=NWK, app_s_key=APP)
    res2 = verify_uplink(frame(raw2.hex()), [session(70_000, relaxed_fcnt=True)], GAP)
    assert isinstance(res2, UplinkAccepted) and res2.fcnt == 4500 and res2.fcnt_reset
    # A forged reset (bad MIC) is still refused.
    assert verify_uplink(frame(W7), [session(10_000, relaxed_fcnt=True)], GAP).reason in (  # type: ignore[union-attr]
        "mic",
        "replay",
    )


def test_truncated_mac_command_in_valid_frame_is_kept_raw() -> None:
    raw = build_data_frame(
        MType.UnconfirmedDataUp, ADDR, 1, nwk_s_key=NWK, app_s_key=APP, fopts=H("030706fe")
    )
    res = verify_uplink(frame(raw.hex()), [session()], GAP)
    assert isinstance(res, UplinkAccepted)
    assert [c.name for c in res.mac_commands] == ["LinkADRAns", "Truncated"]


def test_session_validation_and_redacted_repr() -> None:
    s = session(5)
    assert NWK.hex() not in repr(s) and APP.hex() not in repr(s)
    with pytest.raises(ValueError, match="dev_eui"):
        DeviceSession(b"\x00", ADDR, NWK, APP, fcnt_up=None)
    with pytest.raises(ValueError, match="keys"):
        DeviceSession(EUI, ADDR, NWK[:15], APP, fcnt_up=None)


@settings(max_examples=200, deadline=None)
@given(
    addr=st.binary(min_size=4, max_size=4),
    fcnt=st.integers(0, 0xFFFF_FFFE),
    f_port=st.one_of(st.none(), st.integers(0, 224)),
    payload=st.binary(max_size=40),
    fopts=st.binary(max_size=15),
    confirmed=st.booleans(),
    keys=st.tuples(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16)),
    fresh=st.booleans(),
    data=st.data(),
)
def test_any_single_bit_flip_is_rejected(
    addr: bytes,
    fcnt: int,
    f_port: int | None,
    payload: bytes,
    fopts: bytes,
    confirmed: bool,
    keys: tuple[bytes, bytes],
    fresh: bool,
    data: st.DataObject,
) -> None:
    if f_port is None:
        payload = b""
    if f_port == 0:
        fopts = b""
    nwk, app = keys
    mtype = MType.ConfirmedDataUp if confirmed else MType.UnconfirmedDataUp
    raw = build_data_frame(
        mtype,
        addr,
        fcnt,
        nwk_s_key=nwk,
        app_s_key=app,
        f_port=f_port,
        payload=payload,
        fopts=fopts,
    )
    last = None if (fresh and fcnt <= 0xFFFF) or fcnt == 0 else fcnt - 1
    s = DeviceSession(EUI, addr, nwk, app, fcnt_up=last)
    good = verify_uplink(frame(raw.hex()), [s], GAP)
    assert isinstance(good, UplinkAccepted) and good.payload == payload and good.fcnt == fcnt
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    try:
        f = parse_phy(bytes(flipped))
    except FrameError:
        return
    if not isinstance(f, DataFrame):
        return  # e.g. the MType became JoinRequest/Proprietary: not a data uplink any more
    assert isinstance(verify_uplink(f, [s], GAP), UplinkRejected)


def test_fast_constructors_build_real_frozen_instances() -> None:
    import dataclasses

    s = session(5)
    fast = s.with_fcnt_up(6)
    assert fast == dataclasses.replace(s, fcnt_up=6) and hash(fast) == hash(replace(s, fcnt_up=6))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.fcnt_up = 7  # type: ignore[misc]
    with pytest.raises(ValueError, match="range"):
        s.with_fcnt_up(1 << 32)
    f = frame(W1)
    assert f == DataFrame(**{fld.name: getattr(f, fld.name) for fld in dataclasses.fields(f)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.fcnt16 = 1  # type: ignore[misc]
