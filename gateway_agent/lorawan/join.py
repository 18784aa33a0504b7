"""OTAA for LoRaWAN 1.0.x: join-request check, join-accept, session keys, DevAddr (LORAWAN.md 7).

Pure. The shell persists used DevNonces and the JoinNonce counter.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from gateway_agent.errors import AgentError, FrameError
from gateway_agent.lorawan.crypto import aes_cmac, aes_decrypt, aes_encrypt, mic_equal
from gateway_agent.lorawan.frame import JoinRequest, MType

JOIN_ACCEPT_MHDR = MType.JoinAccept << 5


@dataclass(frozen=True, slots=True)
class JoinAccept:
    """A decrypted join-accept. Identifiers big-endian as written."""

    join_nonce: int
    net_id: bytes
    dev_addr: bytes
    dl_settings: int
    rx_delay: int
    cflist: bytes
    mic: bytes
    mic_valid: bool

    @property
    def rx1_dr_offset(self) -> int:
        return (self.dl_settings >> 4) & 0x07

    @property
    def rx2_dr(self) -> int:
        return self.dl_settings & 0x0F

    @property
    def rx1_delay_s(self) -> int:
        return max(1, self.rx_delay & 0x0F)


@dataclass(frozen=True, slots=True)
class JoinAccepted:
    join_accept: bytes  # on-air PHYPayload, encrypted
    dev_addr: bytes
    nwk_s_key: bytes
    app_s_key: bytes
    join_nonce: int
    dev_nonce: int

    def __repr__(self) -> str:
        return (
            f"JoinAccepted(dev_addr={self.dev_addr.hex()}, join_nonce={self.join_nonce}, "
            f"dev_nonce={self.dev_nonce}, keys=<redacted>)"
        )


@dataclass(frozen=True, slots=True)
class JoinRejected:
    reason: Literal["mic", "dev_nonce_reused"]


def verify_join_request(jr: JoinRequest, app_key: bytes) -> bool:
    """MIC = cmac(AppKey, MHDR | JoinEUI | DevEUI | DevNonce)[0:4]."""
    return mic_equal(aes_cmac(app_key, jr.raw[:19])[:4], jr.mic)


def build_join_request(join_eui: bytes, dev_eui: bytes, dev_nonce: int, app_key: bytes) -> bytes:
    """The device side, for tests and the simulator. EUIs big-endian."""
    if len(join_eui) != 8 or len(dev_eui) != 8 or not 0 <= dev_nonce <= 0xFFFF:
        raise FrameError("bad join-request fields", reason="bad_build")
    msg = b"\x00" + join_eui[::-1] + dev_eui[::-1] + dev_nonce.to_bytes(2, "little")
    return msg + aes_cmac(app_key, msg)[:4]


def _key_block(prefix: int, join_nonce: int, net_id: bytes, dev_nonce: int) -> bytes:
    return (
        bytes((prefix,))
        + join_nonce.to_bytes(3, "little")
        + net_id[::-1]
        + dev_nonce.to_bytes(2, "little")
        + bytes(7)
    )


def derive_session_keys(
    app_key: bytes, join_nonce: int, net_id: bytes, dev_nonce: int
) -> tuple[bytes, bytes]:
    """(NwkSKey, AppSKey) per LORAWAN.md 7.3; inputs in on-air order. `net_id` big-endian."""
    _check_nonces(join_nonce, net_id, dev_nonce)
    block = _key_block(0x01, join_nonce, net_id, dev_nonce) + _key_block(
        0x02, join_nonce, net_id, dev_nonce
    )
    keys = aes_encrypt(app_key, block)
    return keys[:16], keys[16:]


def _check_nonces(join_nonce: int, net_id: bytes, dev_nonce: int) -> None:
    if not 0 <= join_nonce <= 0xFFFFFF:
        raise FrameError("JoinNonce is 24 bits", reason="bad_build")
    if len(net_id) != 3:
        raise FrameError("NetID is 3 bytes", reason="bad_build")
    if not 0 <= dev_nonce <= 0xFFFF:
        raise FrameError("DevNonce is 16 bits", reason="bad_build")


def build_join_accept(
    app_key: bytes,
    join_nonce: int,
    net_id: bytes,
    dev_addr: bytes,
    dl_settings: int,
    rx_delay: int,
    cflist: bytes = b"",
) -> bytes:
    """The on-air join-accept: MHDR | aes128_decrypt(AppKey, body | MIC) (the server "encrypts"
    with AES decrypt). DLSettings bit 7 must be 0 for 1.0.x devices."""
    _check_nonces(join_nonce, net_id, 0)
    if len(dev_addr) != 4:
        raise FrameError("DevAddr is 4 bytes", reason="bad_build")
    if not 0 <= dl_settings <= 0x7F:
        raise FrameError("DLSettings bit 7 (OptNeg) must be 0 for 1.0.x", reason="bad_build")
    if not 0 <= rx_delay <= 0x0F:
        raise FrameError("RxDelay is 4 bits", reason="bad_build")
    if len(cflist) not in (0, 16):
        raise FrameError("CFList is 0 or 16 bytes", reason="bad_build")
    plain = (
        bytes((JOIN_ACCEPT_MHDR,))
        + join_nonce.to_bytes(3, "little")
        + net_id[::-1]
        + dev_addr[::-1]
        + bytes((dl_settings, rx_delay))
        + bytes(cflist)
    )
    mic = aes_cmac(app_key, plain)[:4]
    return plain[:1] + aes_decrypt(app_key, plain[1:] + mic)


def decrypt_join_accept(app_key: bytes, raw: bytes) -> JoinAccept:
    """Read an on-air join-accept (AES encrypt undoes the server's decrypt). Raises only
    `FrameError` for a malformed one; a wrong key shows as `mic_valid` False."""
    raw = bytes(raw)
    if len(raw) not in (17, 33):
        raise FrameError(f"join-accept of {len(raw)} bytes, expected 17 or 33", reason="bad_length")
    if raw[0] >> 5 != MType.JoinAccept or raw[0] & 0x03:
        raise FrameError("not a LoRaWAN R1 join-accept", reason="bad_mhdr")
    if len(app_key) != 16:
        raise FrameError("AppKey is 16 bytes", reason="bad_key")
    body = aes_encrypt(app_key, raw[1:])
    plain = raw[:1] + body[:-4]
    mic = body[-4:]
    return JoinAccept(
        join_nonce=int.from_bytes(body[0:3], "little"),
        net_id=body[3:6][::-1],
        dev_addr=body[6:10][::-1],
        dl_settings=body[10],
        rx_delay=body[11],
        cflist=body[12:-4],
        mic=mic,
        mic_valid=mic_equal(aes_cmac(app_key, plain)[:4], mic),
    )


def cflist_eu868(freqs_hz: Sequence[int]) -> bytes:
    """EU868 CFList: up to five frequencies (3 bytes LE, units of 100 Hz), zero-padded, type 0."""
    if len(freqs_hz) > 5:
        raise FrameError("an EU868 CFList holds at most 5 frequencies", reason="bad_build")
    out = b""
    for f in freqs_hz:
        if f % 100 or not 0 <= f // 100 <= 0xFFFFFF:
            raise FrameError(
                f"frequency {f} Hz not expressible in 100 Hz units", reason="bad_build"
            )
        out += (f // 100).to_bytes(3, "little")
    return out + bytes(15 - len(out)) + b"\x00"


def cflist_frequencies(cflist: bytes) -> tuple[int, ...]:
    """The non-zero frequencies (Hz) of a type-0 CFList."""
    if len(cflist) != 16:
        return ()
    freqs = (int.from_bytes(cflist[i : i + 3], "little") * 100 for i in range(0, 15, 3))
    return tuple(f for f in freqs if f)


def allocate_dev_addr(
    prefix: bytes, taken: Collection[bytes], seed: int, *, prefix_bits: int | None = None
) -> bytes:
    """A DevAddr starting with `prefix` (its top `prefix_bits` bits, default all of it) that is
    not in `taken`. Deterministic for a given seed. For NetID type 0 use the 7-bit NwkID:
    prefix `bytes((nwk_id << 1,))`, prefix_bits 7 (LORAWAN.md 7.4).

    Raises `AgentError` (reason "dev_addr_exhausted") when the whole range is taken.
    """
    bits = len(prefix) * 8 if prefix_bits is None else prefix_bits
    if not 1 <= bits <= 31 or bits > len(prefix) * 8:
        raise ValueError("prefix must fix between 1 and 31 bits of the DevAddr")
    free = 32 - bits
    base = (int.from_bytes(prefix.ljust(4, b"\x00")[:4], "big") >> free) << free
    rng = random.Random(seed)
    for _ in range(64):
        addr = (base | rng.getrandbits(free)).to_bytes(4, "big")
        if addr not in taken:
            return addr
    start = rng.getrandbits(free)
    for k in range(1 << free):  # dense ranges: walk from a seeded start
        addr = (base | ((start + k) & ((1 << free) - 1))).to_bytes(4, "big")
        if addr not in taken:
            return addr
    raise AgentError("no free DevAddr under the prefix", reason="dev_addr_exhausted")


def handle_join_request(
    jr: JoinRequest,
    app_key: bytes,
    used_dev_nonces: Collection[int],
    join_nonce: int,
    net_id: bytes,
    dev_addr: bytes,
    dl_settings: int = 0,
    rx_delay: int = 1,
    cflist: bytes = b"",
    *,
    dev_nonce_policy: Literal["unique", "counter"] = "unique",
) -> JoinAccepted | JoinRejected:
    """Decide a join-request: MIC first (so nobody can burn nonces), then the DevNonce.

    Policy "unique" (default, right for 1.0.0-1.0.4) refuses any DevNonce seen before;
    "counter" (1.0.4) also refuses any value not above the highest one used.
    """
    if not verify_join_request(jr, app_key):
        return JoinRejected("mic")
    if jr.dev_nonce in used_dev_nonces or (
        dev_nonce_policy == "counter" and used_dev_nonces and jr.dev_nonce <= max(used_dev_nonces)
    ):
        return JoinRejected("dev_nonce_reused")
    raw = build_join_accept(app_key, join_nonce, net_id, dev_addr, dl_settings, rx_delay, cflist)
    nwk, app = derive_session_keys(app_key, join_nonce, net_id, jr.dev_nonce)
    return JoinAccepted(raw, bytes(dev_addr), nwk, app, join_nonce, jr.dev_nonce)
