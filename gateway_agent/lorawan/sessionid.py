"""The session part of a reading's id (DESIGN.md invariant 2): a one-way fingerprint of the session
keys that every agent holding the session computes alike, plus the counter-reset epoch. Pure.
"""

from __future__ import annotations

import hashlib
import hmac

_LABEL = b"gateway-agent session id 1"


def session_id(dev_addr: bytes, nwk_s_key: bytes, app_s_key: bytes) -> str:
    """8 hex digits: the first 4 bytes of HMAC-SHA256(NwkSKey, label || DevAddr || AppSKey).

    One-way (the keys cannot be recovered from it) and the same on every agent that holds the
    session, whichever gateway heard the frame. A new session (an OTAA join, new ABP keys or
    address) gets a new one, so its FCnt restarting at 0 never repeats an id. Computed once per
    session (DeviceSession caches it), never per uplink.
    """
    mac = hmac.new(nwk_s_key, _LABEL + dev_addr + app_s_key, hashlib.sha256).digest()
    return mac[:4].hex()


def session_tag(sid: str, reset_epoch: int) -> str:
    """The session part of the id: `sid`, then `.r{n}` after the n-th accepted counter reset of
    that session (ABP `relaxed_fcnt`): the keys stay, so only a count tells the runs apart."""
    return sid if reset_epoch == 0 else f"{sid}.r{reset_epoch}"


def reading_id(dev_eui: bytes, tag: str, fcnt: int) -> str:
    """`{dev_eui}-{tag}-{fcnt32}`: names the frame, not the gateway (DESIGN.md invariant 2)."""
    return f"{dev_eui.hex()}-{tag}-{fcnt}"
