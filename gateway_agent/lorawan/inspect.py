"""`gateway-agent frame decode`: one PHYPayload -> the JSON object of DESIGN.md. Pure.

Decryption policy: FRMPayload is decrypted when the key for its FPort is given (FPort 0 ->
NwkSKey, else AppSKey) AND the MIC did not fail: with a NwkSKey that shows the MIC invalid the
counter (or key) is wrong and "decrypting" would print garbage, so the ciphertext is shown.
Without a NwkSKey the MIC cannot be checked and the payload is decrypted with the given key.
"""

from __future__ import annotations

from typing import Any

from gateway_agent.errors import FrameError
from gateway_agent.lorawan.crypto import crypt_frm_payload, data_mic, mic_equal
from gateway_agent.lorawan.frame import (
    DataFrame,
    JoinAcceptRaw,
    JoinRequest,
    ProprietaryFrame,
    parse_phy,
)
from gateway_agent.lorawan.join import decrypt_join_accept, derive_session_keys, verify_join_request


def _key(name: str, key: bytes | None) -> bytes | None:
    if key is not None and len(key) != 16:
        raise FrameError(f"{name} must be 16 bytes", reason="bad_key")
    return key


def describe_frame(
    phy: bytes,
    *,
    nwk_s_key: bytes | None = None,
    app_s_key: bytes | None = None,
    fcnt_msb: int | None = None,
    app_key: bytes | None = None,
    dev_nonce: int | None = None,
) -> dict[str, Any]:
    """Describe a PHYPayload; raises only `FrameError`. Key order is part of the contract."""
    nwk_s_key = _key("nwk_s_key", nwk_s_key)
    app_s_key = _key("app_s_key", app_s_key)
    app_key = _key("app_key", app_key)
    if fcnt_msb is not None and not 0 <= fcnt_msb <= 0xFFFF:
        raise FrameError("fcnt_msb must be 0..65535", reason="bad_fcnt_msb")
    if dev_nonce is not None and not 0 <= dev_nonce <= 0xFFFF:
        raise FrameError("dev_nonce must be 0..65535", reason="bad_dev_nonce")
    frame = parse_phy(phy)
    if isinstance(frame, DataFrame):
        return _data(frame, nwk_s_key, app_s_key, fcnt_msb)
    if isinstance(frame, JoinRequest):
        return {
            "mtype": "JoinRequest",
            "join_eui": frame.join_eui.hex(),
            "dev_eui": frame.dev_eui.hex(),
            "dev_nonce": frame.dev_nonce,
            "mic": frame.mic.hex(),
            "mic_valid": verify_join_request(frame, app_key) if app_key is not None else None,
        }
    if isinstance(frame, JoinAcceptRaw):
        return _join_accept(frame, app_key, dev_nonce)
    assert isinstance(frame, ProprietaryFrame)
    return {"mtype": "Proprietary", "payload": frame.payload.hex(), "mic_valid": None}


def _data(
    f: DataFrame, nwk_s_key: bytes | None, app_s_key: bytes | None, fcnt_msb: int | None
) -> dict[str, Any]:
    fcnt = f.fcnt16 if fcnt_msb is None else (fcnt_msb << 16) | f.fcnt16
    mic_valid: bool | None = None
    if nwk_s_key is not None:
        mic_valid = mic_equal(data_mic(nwk_s_key, f.uplink, f.dev_addr, fcnt, f.msg), f.mic)
    payload = f.frm_payload
    key = nwk_s_key if f.f_port == 0 else app_s_key
    if f.f_port is not None and key is not None and mic_valid is not False:
        payload = crypt_frm_payload(key, f.uplink, f.dev_addr, fcnt, payload)
    return {
        "mtype": f.mtype.label,
        "dev_addr": f.dev_addr.hex(),
        "fcnt": fcnt,
        "f_port": f.f_port,
        "fopts": f.fopts.hex(),
        "mic": f.mic.hex(),
        "mic_valid": mic_valid,
        "frm_payload": payload.hex(),
    }


def _join_accept(f: JoinAcceptRaw, app_key: bytes | None, dev_nonce: int | None) -> dict[str, Any]:
    if app_key is None:  # encrypted: nothing readable without the AppKey
        return {"mtype": "JoinAccept", "encrypted": f.raw[1:].hex(), "mic_valid": None}
    ja = decrypt_join_accept(app_key, f.raw)
    out: dict[str, Any] = {
        "mtype": "JoinAccept",
        "join_nonce": ja.join_nonce.to_bytes(3, "big").hex(),
        "net_id": ja.net_id.hex(),
        "dev_addr": ja.dev_addr.hex(),
        "dl_settings": ja.dl_settings,
        "rx_delay": ja.rx_delay,
        "cflist": ja.cflist.hex(),
        "mic": ja.mic.hex(),
        "mic_valid": ja.mic_valid,
    }
    if dev_nonce is not None:
        nwk, app = derive_session_keys(app_key, ja.join_nonce, ja.net_id, dev_nonce)
        out["nwk_s_key"] = nwk.hex()
        out["app_s_key"] = app.hex()
    return out
