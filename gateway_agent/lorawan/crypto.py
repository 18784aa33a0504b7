"""LoRaWAN 1.0.x crypto primitives: AES-CMAC, data-frame MIC, FRMPayload keystream (LORAWAN.md 3-4).

Pure. Per-key AES/CMAC contexts are cached so the per-uplink path builds no key schedule.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

UPLINK_DIR = 0
DOWNLINK_DIR = 1
_MAX_FCNT32 = 0xFFFFFFFF


def _check_key(key: bytes) -> None:
    if len(key) != 16:
        raise ValueError("AES-128 keys are 16 bytes")


class KeyContext:
    """Prepared AES-128 contexts for one key: an ECB encryptor/decryptor and a CMAC template.

    ECB contexts are never finalized: each `update` of whole blocks is independent, so one
    context serves every call. CMAC is copied from a keyed template (no new key schedule).
    Use from one thread at a time (the ingest loop); contexts are shared through `key_context`.
    """

    __slots__ = ("_cmac", "_dec", "_enc", "_key")

    def __init__(self, key: bytes) -> None:
        _check_key(key)
        # Built on first use: an AppSKey only ever needs the encryptor, a NwkSKey the CMAC, and
        # only join keys the decryptor. With 10,000 devices in the cache this halves its memory.
        self._key = bytes(key)
        self._enc: Any = None
        self._dec: Any = None
        self._cmac: Any = None

    def cmac_template(self) -> Any:
        if self._cmac is None:
            self._cmac = CMAC(algorithms.AES(self._key))
        return self._cmac

    def encryptor(self) -> Any:
        if self._enc is None:
            self._enc = self._cipher().encryptor()
        return self._enc

    def _cipher(self) -> Cipher[Any]:
        return Cipher(algorithms.AES(self._key), modes.ECB())  # noqa: S305 - the spec's block op

    def __repr__(self) -> str:
        return "KeyContext(<redacted>)"

    def encrypt_blocks(self, data: bytes) -> bytes:
        """AES-128 ECB encrypt; `len(data)` must be a multiple of 16."""
        if len(data) % 16:
            raise ValueError("ECB input must be whole 16-byte blocks")
        out: bytes = (self._enc or self.encryptor()).update(data)
        return out

    def decrypt_blocks(self, data: bytes) -> bytes:
        if len(data) % 16:
            raise ValueError("ECB input must be whole 16-byte blocks")
        dec = self._dec
        if dec is None:
            dec = self._dec = self._cipher().decryptor()
        out: bytes = dec.update(data)
        return out

    def cmac(self, msg: bytes) -> bytes:
        c = (self._cmac or self.cmac_template()).copy()
        c.update(msg)
        out: bytes = c.finalize()
        return out


@lru_cache(maxsize=4096)
def key_context(key: bytes) -> KeyContext:
    """The cached `KeyContext` for `key` (bounded LRU: a gateway serves at most a few thousand)."""
    return KeyContext(bytes(key))


def aes_cmac(key: bytes, msg: bytes) -> bytes:
    """AES-CMAC (RFC 4493), all 16 bytes."""
    return key_context(key).cmac(msg)


def aes_encrypt(key: bytes, data: bytes) -> bytes:
    """AES-128 ECB over whole blocks (`aes128_encrypt` of LORAWAN.md)."""
    return key_context(key).encrypt_blocks(data)


def aes_decrypt(key: bytes, data: bytes) -> bytes:
    return key_context(key).decrypt_blocks(data)


def _block(prefix: int, uplink: bool, dev_addr_le: bytes, fcnt32: int, last: int) -> bytes:
    if not 0 <= fcnt32 <= _MAX_FCNT32:
        raise ValueError("fcnt32 out of range")
    return (
        bytes((prefix, 0, 0, 0, 0, UPLINK_DIR if uplink else DOWNLINK_DIR))
        + dev_addr_le
        + fcnt32.to_bytes(4, "little")
        + bytes((0, last))
    )


def b0_block(uplink: bool, dev_addr: bytes, fcnt32: int, msg_len: int) -> bytes:
    """B0 of LORAWAN.md 3. `dev_addr` big-endian as written."""
    return _block(0x49, uplink, dev_addr[::-1], fcnt32, msg_len)


def a_block(uplink: bool, dev_addr: bytes, fcnt32: int, i: int) -> bytes:
    """A_i of LORAWAN.md 4. `dev_addr` big-endian as written; `i` starts at 1."""
    return _block(0x01, uplink, dev_addr[::-1], fcnt32, i)


def data_mic(nwk_s_key: bytes, uplink: bool, dev_addr: bytes, fcnt32: int, msg: bytes) -> bytes:
    """The 4-byte MIC of a data frame: cmac(NwkSKey, B0 | msg)[0:4]. `dev_addr` big-endian."""
    if len(msg) > 255:
        raise ValueError("msg longer than a PHYPayload")
    return key_context(nwk_s_key).cmac(b0_block(uplink, dev_addr, fcnt32, len(msg)) + msg)[:4]


def keystream(ctx: KeyContext, uplink: bool, dev_addr: bytes, fcnt32: int, n: int) -> bytes:
    """S = aes(K, A_1) | aes(K, A_2) | ... covering at least `n` bytes."""
    if n <= 0:
        return b""
    head = _block(0x01, uplink, dev_addr[::-1], fcnt32, 0)[:15]
    blocks = b"".join(head + bytes((i,)) for i in range(1, (n + 15) // 16 + 1))
    return ctx.encrypt_blocks(blocks)


def xor_bytes(a: bytes, b: bytes) -> bytes:
    """a XOR b[:len(a)]."""
    n = len(a)
    if n == 0:
        return b""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b[:n], "big")).to_bytes(n, "big")


def crypt_frm_payload(key: bytes, uplink: bool, dev_addr: bytes, fcnt32: int, data: bytes) -> bytes:
    """Encrypt or decrypt a FRMPayload (the same operation). `dev_addr` big-endian."""
    if len(data) > 255:
        raise ValueError("FRMPayload longer than a PHYPayload")
    return xor_bytes(data, keystream(key_context(key), uplink, dev_addr, fcnt32, len(data)))


def mic_equal(a: bytes, b: bytes) -> bool:
    """Constant-time MIC comparison."""
    return hmac.compare_digest(a, b)


_LEN = tuple(bytes((i,)) for i in range(256))
_B0_HEAD = (b"\x49\x00\x00\x00\x00\x00", b"\x49\x00\x00\x00\x00\x01")  # by Dir
_A_HEAD = (b"\x01\x00\x00\x00\x00\x00", b"\x01\x00\x00\x00\x00\x01")
_compare = hmac.compare_digest


def mic_le(ctx: KeyContext, direction: int, addr_le: bytes, fcnt32: int, msg: bytes) -> bytes:
    """Hot-path MIC: `addr_le` as on air, `direction` 0 up / 1 down. Caller checks ranges."""
    c = (ctx._cmac or ctx.cmac_template()).copy()
    c.update(
        _B0_HEAD[direction]
        + addr_le
        + fcnt32.to_bytes(4, "little")
        + b"\x00"
        + _LEN[len(msg)]
        + msg
    )
    mic: bytes = c.finalize()[:4]
    return mic


def crypt_le(ctx: KeyContext, direction: int, addr_le: bytes, fcnt32: int, data: bytes) -> bytes:
    """Hot-path FRMPayload en/decryption: `addr_le` as on air, `len(data)` <= 255."""
    n = len(data)
    if not n:
        return b""
    head = _A_HEAD[direction] + addr_le + fcnt32.to_bytes(4, "little") + b"\x00"
    if n <= 16:
        blocks = head + b"\x01"
    else:
        blocks = b"".join([head + _LEN[i] for i in range(1, (n + 15) // 16 + 1)])
    ks: bytes = (ctx._enc or ctx.encryptor()).update(blocks)
    return (int.from_bytes(data, "big") ^ int.from_bytes(ks[:n], "big")).to_bytes(n, "big")


class SessionCrypto:
    """The prepared contexts of one ABP/OTAA session (NwkSKey, AppSKey)."""

    __slots__ = ("app", "nwk")

    def __init__(self, nwk_s_key: bytes, app_s_key: bytes) -> None:
        self.nwk = key_context(nwk_s_key)
        self.app = key_context(app_s_key)

    def __repr__(self) -> str:
        return "SessionCrypto(<redacted>)"

    def mic(self, uplink: bool, dev_addr: bytes, fcnt32: int, msg: bytes) -> bytes:
        return self.nwk.cmac(b0_block(uplink, dev_addr, fcnt32, len(msg)) + msg)[:4]

    def mic_le(self, direction: int, addr_le: bytes, fcnt32: int, msg: bytes) -> bytes:
        return mic_le(self.nwk, direction, addr_le, fcnt32, msg)

    def crypt_le(
        self, f_port: int, direction: int, addr_le: bytes, fcnt32: int, data: bytes
    ) -> bytes:
        return crypt_le(self.nwk if f_port == 0 else self.app, direction, addr_le, fcnt32, data)

    def crypt(self, f_port: int, uplink: bool, dev_addr: bytes, fcnt32: int, data: bytes) -> bytes:
        """FRMPayload en/decryption with the key chosen by FPort (0 -> NwkSKey)."""
        ctx = self.nwk if f_port == 0 else self.app
        return xor_bytes(data, keystream(ctx, uplink, dev_addr, fcnt32, len(data)))
