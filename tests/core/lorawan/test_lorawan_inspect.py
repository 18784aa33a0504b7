"""describe_frame: the exact JSON objects of LORAWAN.md W1-W4, W6 (and joins per DESIGN.md)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.errors import FrameError
from gateway_agent.lorawan.downlink import build_downlink
from gateway_agent.lorawan.inspect import describe_frame
from gateway_agent.lorawan.session import DeviceSession

H = bytes.fromhex
NWK = H("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = H("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
APP_KEY = H("5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e")

VECTORS = [
    (
        "405a3c0b26802a00016a485fefd2eefc1bd02b37",
        None,
        '{"mtype": "UnconfirmedDataUp", "dev_addr": "260b3c5a", "fcnt": 42, "f_port": 1, "fopts": "", "mic": "1bd02b37", "mic_valid": true, "frm_payload": "016700e1026850"}',
    ),
    (
        "805a3c0b26852b00030706fe0a027a95da3efd9316a6dfa8cf89ad3b8792b4c4be0dacf9cbcc",
        None,
        '{"mtype": "ConfirmedDataUp", "dev_addr": "260b3c5a", "fcnt": 43, "f_port": 2, "fopts": "030706fe0a", "mic": "acf9cbcc", "mic_valid": true, "frm_payload": "303132333435363738393a3b3c3d3e3f40414243"}',
    ),
    (
        "405a3c0b26002c000045e97b37f25b6d35",
        None,
        '{"mtype": "UnconfirmedDataUp", "dev_addr": "260b3c5a", "fcnt": 44, "f_port": 0, "fopts": "", "mic": "f25b6d35", "mic_valid": true, "frm_payload": "0206fe0a"}',
    ),
    (
        "405a3c0b26800500015b3f55cd7c3d581a",
        1,
        '{"mtype": "UnconfirmedDataUp", "dev_addr": "260b3c5a", "fcnt": 65541, "f_port": 1, "fopts": "", "mic": "7c3d581a", "mic_valid": true, "frm_payload": "016700e1"}',
    ),
    (
        "605a3c0b2620070014496b6e",
        None,
        '{"mtype": "UnconfirmedDataDown", "dev_addr": "260b3c5a", "fcnt": 7, "f_port": null, "fopts": "", "mic": "14496b6e", "mic_valid": true, "frm_payload": ""}',
    ),
]


@pytest.mark.parametrize(("phy", "msb", "expected"), VECTORS)
def test_worked_examples_byte_for_byte(phy: str, msb: int | None, expected: str) -> None:
    out = describe_frame(H(phy), nwk_s_key=NWK, app_s_key=APP, fcnt_msb=msb)
    assert out == json.loads(expected)
    assert json.dumps(out) == expected  # same keys, same order


def test_w4_without_fcnt_msb() -> None:
    out = describe_frame(H("405a3c0b26800500015b3f55cd7c3d581a"), nwk_s_key=NWK, app_s_key=APP)
    assert out["fcnt"] == 5 and out["mic_valid"] is False
    assert out["frm_payload"] == "5b3f55cd"  # MIC failed: shown as on air, not garbage


def test_w7_flipped_bit() -> None:
    out = describe_frame(H("405a3c0b26802a00016a485fefd2eefd1bd02b37"), nwk_s_key=NWK)
    assert out["mic_valid"] is False


def test_without_keys() -> None:
    out = describe_frame(H(VECTORS[0][0]))
    assert out["mic_valid"] is None and out["frm_payload"] == "6a485fefd2eefc"
    # Only the AppSKey: cannot check the MIC, decrypts anyway.
    out = describe_frame(H(VECTORS[0][0]), app_s_key=APP)
    assert out["mic_valid"] is None and out["frm_payload"] == "016700e1026850"
    # FPort 0 needs the NwkSKey; the AppSKey alone leaves it encrypted.
    out = describe_frame(H(VECTORS[2][0]), app_s_key=APP)
    assert out["frm_payload"] == "45e97b37"


def test_join_request() -> None:
    jr = H("00341200d07ed5b37030051c000ba304000100a028d19c")
    out = describe_frame(jr, app_key=APP_KEY)
    assert list(out) == ["mtype", "join_eui", "dev_eui", "dev_nonce", "mic", "mic_valid"]
    assert out == {
        "mtype": "JoinRequest",
        "join_eui": "70b3d57ed0001234",
        "dev_eui": "0004a30b001c0530",
        "dev_nonce": 1,
        "mic": "a028d19c",
        "mic_valid": True,
    }
    assert describe_frame(jr)["mic_valid"] is None
    assert describe_frame(jr, app_key=bytes(16))["mic_valid"] is False


def test_join_accept_with_and_without_dev_nonce() -> None:
    ja = H("2033449495404d70139357f7695c798cd8e0b1fe4216d690240c83d86ef0044976")
    out = describe_frame(ja, app_key=APP_KEY)
    assert out == {
        "mtype": "JoinAccept",
        "join_nonce": "000001",
        "net_id": "000000",
        "dev_addr": "00f3a1b2",
        "dl_settings": 0,
        "rx_delay": 1,
        "cflist": "184f84e85684b85e84886684586e8400",
        "mic": "2d5770a2",
        "mic_valid": True,
    }
    assert list(out) == [
        "mtype",
        "join_nonce",
        "net_id",
        "dev_addr",
        "dl_settings",
        "rx_delay",
        "cflist",
        "mic",
        "mic_valid",
    ]
    out = describe_frame(ja, app_key=APP_KEY, dev_nonce=1)
    assert list(out)[-2:] == ["nwk_s_key", "app_s_key"]
    assert out["nwk_s_key"] == "1b82c6739d26eb2f115f54fdbb9d3655"
    assert out["app_s_key"] == "2234dd7ac2b03c76bbee744098bb0d57"
    assert describe_frame(ja)["mic_valid"] is None


def test_proprietary_and_bad_arguments() -> None:
    assert describe_frame(H("e0abcd")) == {
        "mtype": "Proprietary",
        "payload": "abcd",
        "mic_valid": None,
    }
    for kw in ({"nwk_s_key": b"x"}, {"fcnt_msb": 1 << 16}, {"dev_nonce": -1}):
        with pytest.raises(FrameError):
            describe_frame(H(VECTORS[0][0]), **kw)  # type: ignore[arg-type]


def test_build_downlink_w6_and_with_payload() -> None:
    s = DeviceSession(bytes(8), H("260b3c5a"), NWK, APP, fcnt_up=42, fcnt_down=7)
    assert build_downlink(s, 7, ack=True).hex() == "605a3c0b2620070014496b6e"
    phy = build_downlink(
        s, 70_000, ack=False, f_port=10, payload=b"\x01\x02", confirmed=True, f_pending=True
    )
    out = describe_frame(phy, nwk_s_key=NWK, app_s_key=APP, fcnt_msb=1)
    assert out["mtype"] == "ConfirmedDataDown" and out["mic_valid"] is True
    assert out["fcnt"] == 70_000 and out["frm_payload"] == "0102" and out["f_port"] == 10


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.booleans())
def test_arbitrary_bytes_raise_only_frame_error(data: bytes, keys: bool) -> None:
    kw = {"nwk_s_key": NWK, "app_s_key": APP, "app_key": APP_KEY, "dev_nonce": 3} if keys else {}
    try:
        out = describe_frame(data, **kw)  # type: ignore[arg-type]
    except FrameError:
        return
    assert "mtype" in out
    json.dumps(out)
