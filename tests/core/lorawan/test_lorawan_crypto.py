"""Crypto primitives against RFC 4493 and the LORAWAN.md section 12 intermediate blocks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.lorawan import crypto
from gateway_agent.lorawan.crypto import (
    SessionCrypto,
    a_block,
    aes_cmac,
    aes_encrypt,
    b0_block,
    crypt_frm_payload,
    data_mic,
    key_context,
)

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
ADDR = bytes.fromhex("260b3c5a")
H = bytes.fromhex

RFC_KEY = H("2b7e151628aed2a6abf7158809cf4f3c")


@pytest.mark.parametrize(
    ("msg", "mac"),
    [
        ("", "bb1d6929e95937287fa37d129b756746"),
        ("6bc1bee22e409f96e93d7e117393172a", "070a16b46b4d4144f79bdd9dd04a287c"),
        # RFC 4493 examples 3 and 4 (40 and 64 bytes) exercise the multi-block paths.
        (
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411",
            "dfa66747de9ae63030ca32611497c827",
        ),
        (
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
            "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
            "51f0bebf7e3b9d92fc49741779363cfe",
        ),
    ],
)
def test_rfc4493_cmac(msg: str, mac: str) -> None:
    assert aes_cmac(RFC_KEY, H(msg)).hex() == mac
    # A second call reuses the cached, copied template and must give the same answer.
    assert aes_cmac(RFC_KEY, H(msg)).hex() == mac


@pytest.mark.parametrize(
    ("fcnt", "i", "a", "s", "key"),
    [
        (42, 1, "0100000000005a3c0b262a0000000001", "6b2f5f0ed086ac3539fe33ea12cb4921", APP),
        (43, 1, "0100000000005a3c0b262b0000000001", "4aa4e80dc9a62091e791f5b29106b9ad", APP),
        (43, 2, "0100000000005a3c0b262b0000000002", "f485fc4e1770c503b564530454a19c4c", APP),
        (44, 1, "0100000000005a3c0b262c0000000001", "47ef853dad996ca72d4cf9dc6da0929d", NWK),
        (65541, 1, "0100000000005a3c0b26050001000001", "5a58552ca707af98f4a1ade2231ceaf0", APP),
    ],
)
def test_a_blocks_and_keystream(fcnt: int, i: int, a: str, s: str, key: bytes) -> None:
    assert a_block(True, ADDR, fcnt, i).hex() == a
    assert aes_encrypt(key, H(a)).hex() == s


@pytest.mark.parametrize(
    ("uplink", "fcnt", "msg_len", "b0"),
    [
        (True, 42, 16, "4900000000005a3c0b262a0000000010"),
        (True, 43, 0x22, "4900000000005a3c0b262b0000000022"),
        (True, 44, 13, "4900000000005a3c0b262c000000000d"),
        (True, 65541, 13, "4900000000005a3c0b2605000100000d"),
        (False, 7, 8, "4900000000015a3c0b26070000000008"),
    ],
)
def test_b0_blocks(uplink: bool, fcnt: int, msg_len: int, b0: str) -> None:
    assert b0_block(uplink, ADDR, fcnt, msg_len).hex() == b0


def test_w1_cmac_and_mic() -> None:
    msg = H("405a3c0b26802a00016a485fefd2eefc")
    full = aes_cmac(NWK, b0_block(True, ADDR, 42, len(msg)) + msg)
    assert full.hex() == "1bd02b3720c2c08226792c8aa53a5cd7"
    assert data_mic(NWK, True, ADDR, 42, msg).hex() == "1bd02b37"


@pytest.mark.parametrize(
    ("phy", "uplink", "fcnt", "mic"),
    [
        ("405a3c0b26802a00016a485fefd2eefc1bd02b37", True, 42, "1bd02b37"),
        (
            "805a3c0b26852b00030706fe0a027a95da3efd9316a6dfa8cf89ad3b8792b4c4be0dacf9cbcc",
            True,
            43,
            "acf9cbcc",
        ),
        ("405a3c0b26002c000045e97b37f25b6d35", True, 44, "f25b6d35"),
        ("405a3c0b26800500015b3f55cd7c3d581a", True, 65541, "7c3d581a"),
        ("405a3c0b26800500015b3f55cd7c3d581a", True, 5, "1f53dc8b"),  # W4, wrong MSB guess
        ("605a3c0b2620070014496b6e", False, 7, "14496b6e"),
        ("405a3c0b26802a00016a485fefd2eefd1bd02b37", True, 42, "3b857520"),  # W7, flipped bit
    ],
)
def test_data_mics(phy: str, uplink: bool, fcnt: int, mic: str) -> None:
    assert data_mic(NWK, uplink, ADDR, fcnt, H(phy)[:-4]).hex() == mic
    assert SessionCrypto(NWK, APP).mic(uplink, ADDR, fcnt, H(phy)[:-4]).hex() == mic


@pytest.mark.parametrize(
    ("key", "fcnt", "plain", "cipher"),
    [
        (APP, 42, "016700e1026850", "6a485fefd2eefc"),
        (APP, 43, bytes(range(0x30, 0x44)).hex(), "7a95da3efd9316a6dfa8cf89ad3b8792b4c4be0d"),
        (NWK, 44, "0206fe0a", "45e97b37"),
        (APP, 65541, "016700e1", "5b3f55cd"),
    ],
)
def test_frm_payload_vectors(key: bytes, fcnt: int, plain: str, cipher: str) -> None:
    assert crypt_frm_payload(key, True, ADDR, fcnt, H(plain)).hex() == cipher
    assert crypt_frm_payload(key, True, ADDR, fcnt, H(cipher)).hex() == plain


def test_session_crypto_picks_key_by_fport() -> None:
    sc = SessionCrypto(NWK, APP)
    assert sc.crypt(0, True, ADDR, 44, H("45e97b37")).hex() == "0206fe0a"
    assert sc.crypt(1, True, ADDR, 44, H("45e97b37")).hex() != "0206fe0a"  # W3: AppSKey is wrong


def test_key_contexts_are_cached_and_redacted() -> None:
    assert key_context(NWK) is key_context(bytes(NWK))
    assert NWK.hex() not in repr(key_context(NWK))
    assert NWK.hex() not in repr(SessionCrypto(NWK, APP))
    assert APP.hex() not in repr(SessionCrypto(NWK, APP))


def test_bad_inputs_raise_value_error() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        aes_cmac(b"short", b"")
    with pytest.raises(ValueError, match="range"):
        data_mic(NWK, True, ADDR, 1 << 32, b"")
    with pytest.raises(ValueError, match="blocks"):
        aes_encrypt(NWK, b"123")


@settings(max_examples=200, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=16),
    uplink=st.booleans(),
    addr=st.binary(min_size=4, max_size=4),
    fcnt=st.integers(0, 0xFFFFFFFF),
    data=st.binary(max_size=255),
)
def test_crypt_is_an_involution_and_matches_blockwise(
    key: bytes, uplink: bool, addr: bytes, fcnt: int, data: bytes
) -> None:
    enc = crypt_frm_payload(key, uplink, addr, fcnt, data)
    assert len(enc) == len(data)
    assert crypt_frm_payload(key, uplink, addr, fcnt, enc) == data
    # Independent reference: one A_i block at a time.
    stream = b"".join(
        aes_encrypt(key, a_block(uplink, addr, fcnt, i)) for i in range(1, len(data) // 16 + 2)
    )
    assert enc == bytes(x ^ y for x, y in zip(data, stream, strict=False))


def test_xor_keeps_leading_zero_bytes() -> None:
    assert crypto.xor_bytes(b"\x00\x00\x01", b"\x00\x00\x00\xff") == b"\x00\x00\x01"
    assert crypto.xor_bytes(b"", b"abc") == b""
