"""OTAA: W5 join-request, join-accept both ways, session keys, DevAddr allocation, decisions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.errors import AgentError, FrameError
from gateway_agent.lorawan.frame import JoinRequest, parse_phy
from gateway_agent.lorawan.join import (
    JoinAccepted,
    JoinRejected,
    allocate_dev_addr,
    build_join_accept,
    build_join_request,
    cflist_eu868,
    cflist_frequencies,
    decrypt_join_accept,
    derive_session_keys,
    handle_join_request,
    verify_join_request,
)
from hil import lorawan_crypto as hil_crypto

H = bytes.fromhex
APP_KEY = H("5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e")
JOIN_EUI = H("70b3d57ed0001234")
DEV_EUI = H("0004a30b001c0530")
JR = "00341200d07ed5b37030051c000ba304000100a028d19c"
JA_CF = "2033449495404d70139357f7695c798cd8e0b1fe4216d690240c83d86ef0044976"
JA = "201ad6c982ea9bbca25da0e4697171ec3c"
CF = "184f84e85684b85e84886684586e8400"
FREQS = [867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000]
NWK = "1b82c6739d26eb2f115f54fdbb9d3655"
APP = "2234dd7ac2b03c76bbee744098bb0d57"


def jr() -> JoinRequest:
    f = parse_phy(H(JR))
    assert isinstance(f, JoinRequest)
    return f


def test_w5_join_request() -> None:
    assert build_join_request(JOIN_EUI, DEV_EUI, 1, APP_KEY).hex() == JR
    assert verify_join_request(jr(), APP_KEY)
    assert not verify_join_request(jr(), bytes(16))


def test_w5_cflist() -> None:
    assert cflist_eu868(FREQS).hex() == CF
    assert cflist_frequencies(H(CF)) == tuple(FREQS)
    assert cflist_eu868([867_100_000]).hex() == "184f84" + "00" * 13
    with pytest.raises(FrameError):
        cflist_eu868([867_100_050])
    with pytest.raises(FrameError):
        cflist_eu868(FREQS + [868_100_000])


@pytest.mark.parametrize(("cflist", "expected"), [(CF, JA_CF), ("", JA)])
def test_w5_join_accept_encrypt_and_decrypt(cflist: str, expected: str) -> None:
    raw = build_join_accept(APP_KEY, 1, H("000000"), H("00f3a1b2"), 0, 1, H(cflist))
    assert raw.hex() == expected
    ja = decrypt_join_accept(APP_KEY, raw)
    assert (ja.join_nonce, ja.net_id.hex(), ja.dev_addr.hex()) == (1, "000000", "00f3a1b2")
    assert (ja.dl_settings, ja.rx_delay, ja.cflist.hex()) == (0, 1, cflist)
    assert ja.mic_valid and ja.mic.hex() == ("2d5770a2" if cflist else "b5afca20")
    assert (ja.rx1_dr_offset, ja.rx2_dr, ja.rx1_delay_s) == (0, 0, 1)
    # The simulator (device side) reads it too.
    assert hil_crypto.open_join_accept(raw, APP_KEY).dev_addr == H("00f3a1b2")


def test_join_accept_wrong_key_and_malformed() -> None:
    assert not decrypt_join_accept(bytes(16), H(JA_CF)).mic_valid
    for bad in ("20", JA[:-2], "00" + JA[2:], "21" + JA[2:]):
        with pytest.raises(FrameError):
            decrypt_join_accept(APP_KEY, H(bad))
    with pytest.raises(FrameError):
        build_join_accept(APP_KEY, 1, H("000000"), H("00f3a1b2"), 0x80, 1)  # OptNeg bit


def test_w5_session_keys() -> None:
    nwk, app = derive_session_keys(APP_KEY, 1, H("000000"), 1)
    assert (nwk.hex(), app.hex()) == (NWK, APP)


@settings(max_examples=100, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=16),
    jn=st.integers(0, 0xFFFFFF),
    net_id=st.binary(min_size=3, max_size=3),
    dn=st.integers(0, 0xFFFF),
)
def test_session_keys_match_the_simulator(key: bytes, jn: int, net_id: bytes, dn: int) -> None:
    ours = derive_session_keys(key, jn, net_id, dn)
    theirs = hil_crypto.derive_session_keys(key, jn.to_bytes(3, "little"), net_id[::-1], dn)
    assert ours == theirs


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=16),
    jn=st.integers(0, 0xFFFFFF),
    net_id=st.binary(min_size=3, max_size=3),
    addr=st.binary(min_size=4, max_size=4),
    dl=st.integers(0, 0x7F),
    rxd=st.integers(0, 15),
    with_cf=st.booleans(),
)
def test_join_accept_round_trip(
    key: bytes, jn: int, net_id: bytes, addr: bytes, dl: int, rxd: int, with_cf: bool
) -> None:
    cf = cflist_eu868(FREQS) if with_cf else b""
    ja = decrypt_join_accept(key, build_join_accept(key, jn, net_id, addr, dl, rxd, cf))
    assert (ja.join_nonce, ja.net_id, ja.dev_addr, ja.dl_settings, ja.rx_delay, ja.cflist) == (
        jn,
        net_id,
        addr,
        dl,
        rxd,
        cf,
    )
    assert ja.mic_valid


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.binary(min_size=16, max_size=16))
def test_decrypt_join_accept_arbitrary_bytes(raw: bytes, key: bytes) -> None:
    reason = None
    try:
        ja = decrypt_join_accept(key, raw)
    except FrameError as e:  # any other exception fails the test
        reason = e.reason
    if reason is None:
        assert len(ja.mic) == 4 and len(raw) in (17, 33)
    else:
        assert reason in ("bad_length", "bad_mhdr")


def test_handle_join_request_decisions() -> None:
    res = handle_join_request(
        jr(), APP_KEY, set(), 1, H("000000"), H("00f3a1b2"), 0, 1, cflist_eu868(FREQS)
    )
    assert isinstance(res, JoinAccepted)
    assert res.join_accept.hex() == JA_CF
    assert (res.nwk_s_key.hex(), res.app_s_key.hex(), res.dev_addr.hex()) == (NWK, APP, "00f3a1b2")
    assert (res.join_nonce, res.dev_nonce) == (1, 1)
    assert NWK not in repr(res) and APP not in repr(res)
    assert handle_join_request(jr(), bytes(16), set(), 1, bytes(3), bytes(4)) == JoinRejected("mic")
    assert handle_join_request(jr(), APP_KEY, {1}, 1, bytes(3), bytes(4)) == JoinRejected(
        "dev_nonce_reused"
    )
    # 1.0.4 counter policy: anything not above the highest used nonce is a replay.
    assert handle_join_request(
        jr(), APP_KEY, {0, 5}, 1, bytes(3), bytes(4), dev_nonce_policy="counter"
    ) == JoinRejected("dev_nonce_reused")
    assert isinstance(
        handle_join_request(jr(), APP_KEY, {0}, 1, bytes(3), bytes(4), dev_nonce_policy="counter"),
        JoinAccepted,
    )


def test_allocate_dev_addr() -> None:
    a = allocate_dev_addr(b"\x26\x01", set(), seed=7)
    assert a[:2] == b"\x26\x01" and a == allocate_dev_addr(b"\x26\x01", set(), seed=7)
    assert allocate_dev_addr(b"\x26\x01", {a}, seed=7) != a
    # NetID 000013 (TTN): 7-bit NwkID 0x13 -> 26000000..27ffffff.
    for seed in range(50):
        b = allocate_dev_addr(bytes([0x13 << 1]), set(), seed=seed, prefix_bits=7)
        assert 0x26000000 <= int.from_bytes(b, "big") <= 0x27FFFFFF
    # A nearly full 3-byte prefix (256 addresses) still finds the last free one.
    taken = {bytes([1, 2, 3, i]) for i in range(256) if i != 77}
    assert allocate_dev_addr(b"\x01\x02\x03", taken, seed=1) == bytes([1, 2, 3, 77])
    with pytest.raises(AgentError) as ei:
        allocate_dev_addr(b"\x01\x02\x03", taken | {bytes([1, 2, 3, 77])}, seed=1)
    assert ei.value.reason == "dev_addr_exhausted"
