"""Device-side LoRaWAN 1.0.x frame crypto, written from LORAWAN.md apart from gateway_agent.lorawan
on purpose: the core is checked against it (tests/core/lorawan/test_lorawan_frame.py, test_lorawan_join.py), so
it shares no code with the core. Pure; DevAddr/EUIs come big-endian (as written), reversed here.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

UP, DOWN = 0, 1
MTYPE_NAMES = {
    0: "JoinRequest",
    1: "JoinAccept",
    2: "UnconfirmedDataUp",
    3: "UnconfirmedDataDown",
    4: "ConfirmedDataUp",
    5: "ConfirmedDataDown",
    6: "RFU",
    7: "Proprietary",
}


class LorawanSimError(ValueError):
    """A frame the simulated device cannot accept (bad MIC, wrong address, truncated)."""


def aes_encrypt(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - the spec's block op
    return enc.update(block) + enc.finalize()


def aes_decrypt(key: bytes, block: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()  # noqa: S305
    return dec.update(block) + dec.finalize()


def cmac(key: bytes, msg: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def _le(dev_addr: bytes) -> bytes:
    return dev_addr[::-1]


def data_mic(nwk_s_key: bytes, direction: int, dev_addr: bytes, fcnt32: int, msg: bytes) -> bytes:
    """LORAWAN.md section 3: B0 | msg, first 4 bytes of the CMAC."""
    b0 = (
        b"\x49\x00\x00\x00\x00"
        + bytes([direction])
        + _le(dev_addr)
        + fcnt32.to_bytes(4, "little")
        + b"\x00"
        + bytes([len(msg)])
    )
    return cmac(nwk_s_key, b0 + msg)[:4]


def frm_cipher(key: bytes, direction: int, dev_addr: bytes, fcnt32: int, data: bytes) -> bytes:
    """LORAWAN.md section 4: the A_i keystream XOR; encrypt and decrypt are the same."""
    stream = b""
    for i in range(1, (len(data) + 15) // 16 + 1):
        a = (
            b"\x01\x00\x00\x00\x00"
            + bytes([direction])
            + _le(dev_addr)
            + fcnt32.to_bytes(4, "little")
            + b"\x00"
            + bytes([i])
        )
        stream += aes_encrypt(key, a)
    return bytes(x ^ y for x, y in zip(data, stream, strict=False))


def build_data_frame(
    mtype: int,
    dev_addr: bytes,
    fcnt32: int,
    nwk_s_key: bytes,
    app_s_key: bytes,
    *,
    f_port: int | None = None,
    payload: bytes = b"",
    fopts: bytes = b"",
    adr: bool = False,
    ack: bool = False,
    adr_ack_req: bool = False,
    f_pending: bool = False,
) -> bytes:
    """A data frame (MType 2..5); the direction follows the MType."""
    if mtype not in (2, 3, 4, 5):
        raise LorawanSimError(f"not a data MType: {mtype}")
    if len(fopts) > 15:
        raise LorawanSimError("FOpts longer than 15 bytes")
    if f_port == 0 and fopts:
        raise LorawanSimError("FPort 0 with FOpts")
    if f_port is None and payload:
        raise LorawanSimError("a payload needs an FPort")
    direction = UP if mtype in (2, 4) else DOWN
    fctrl = len(fopts) | (0x80 if adr else 0) | (0x20 if ack else 0)
    if direction == UP and adr_ack_req:
        fctrl |= 0x40
    if direction == DOWN and f_pending:
        fctrl |= 0x10
    msg = bytes([mtype << 5]) + _le(dev_addr) + bytes([fctrl])
    msg += (fcnt32 & 0xFFFF).to_bytes(2, "little") + fopts
    if f_port is not None:
        key = nwk_s_key if f_port == 0 else app_s_key
        msg += bytes([f_port]) + frm_cipher(key, direction, dev_addr, fcnt32, payload)
    return msg + data_mic(nwk_s_key, direction, dev_addr, fcnt32, msg)


@dataclass(frozen=True, slots=True)
class DataFrame:
    mtype: int
    dev_addr: bytes
    fcnt32: int
    adr: bool
    ack: bool
    f_pending: bool
    fopts: bytes
    f_port: int | None
    payload: bytes  # decrypted


def open_data_frame(phy: bytes, nwk_s_key: bytes, app_s_key: bytes, fcnt_hint: int) -> DataFrame:
    """Verify and decrypt a data frame. `fcnt_hint`: the 32-bit counter expected (its MSBs are
    used to extend the 16 bits on air). Raises LorawanSimError."""
    if len(phy) < 12:
        raise LorawanSimError("frame shorter than 12 bytes")
    mtype = phy[0] >> 5
    if mtype not in (2, 3, 4, 5) or phy[0] & 0x03:
        raise LorawanSimError("not a LoRaWAN R1 data frame")
    direction = UP if mtype in (2, 4) else DOWN
    dev_addr = phy[1:5][::-1]
    fctrl = phy[5]
    f16 = int.from_bytes(phy[6:8], "little")
    fcnt32 = (fcnt_hint & ~0xFFFF) | f16
    if fcnt32 < fcnt_hint:
        fcnt32 += 0x10000
    n_opts = fctrl & 0x0F
    if 8 + n_opts > len(phy) - 4:
        raise LorawanSimError("truncated FOpts")
    msg, mic = phy[:-4], phy[-4:]
    if not hmac.compare_digest(data_mic(nwk_s_key, direction, dev_addr, fcnt32, msg), mic):
        raise LorawanSimError("MIC mismatch")
    fopts = phy[8 : 8 + n_opts]
    rest = msg[8 + n_opts :]
    f_port = rest[0] if rest else None
    payload = b""
    if f_port is not None:
        key = nwk_s_key if f_port == 0 else app_s_key
        payload = frm_cipher(key, direction, dev_addr, fcnt32, rest[1:])
    return DataFrame(
        mtype=mtype,
        dev_addr=dev_addr,
        fcnt32=fcnt32,
        adr=bool(fctrl & 0x80),
        ack=bool(fctrl & 0x20),
        f_pending=direction == DOWN and bool(fctrl & 0x10),
        fopts=fopts,
        f_port=f_port,
        payload=payload,
    )


def build_join_request(join_eui: bytes, dev_eui: bytes, dev_nonce: int, app_key: bytes) -> bytes:
    """LORAWAN.md 7.1: 23 bytes, EUIs reversed on air."""
    msg = b"\x00" + join_eui[::-1] + dev_eui[::-1] + dev_nonce.to_bytes(2, "little")
    return msg + cmac(app_key, msg)[:4]


@dataclass(frozen=True, slots=True)
class JoinAccept:
    join_nonce: bytes  # as on air (LE), 3 bytes
    net_id: bytes  # as on air (LE), 3 bytes
    dev_addr: bytes  # big-endian, as written
    dl_settings: int
    rx_delay: int
    cflist: bytes


def build_join_accept(
    app_key: bytes,
    join_nonce: int,
    net_id: bytes,
    dev_addr: bytes,
    dl_settings: int = 0,
    rx_delay: int = 1,
    cflist: bytes = b"",
) -> bytes:
    """The network side (for tests and the emulated join server): encrypt with AES *decrypt*."""
    body = (
        join_nonce.to_bytes(3, "little")
        + net_id[::-1]
        + dev_addr[::-1]
        + bytes([dl_settings, rx_delay])
        + cflist
    )
    mic = cmac(app_key, b"\x20" + body)[:4]
    plain = body + mic
    return b"\x20" + b"".join(
        aes_decrypt(app_key, plain[i : i + 16]) for i in range(0, len(plain), 16)
    )


def open_join_accept(phy: bytes, app_key: bytes) -> JoinAccept:
    """Decrypt (AES encrypt) and verify a join-accept. Raises LorawanSimError."""
    if len(phy) not in (17, 33) or phy[0] != 0x20:
        raise LorawanSimError("not a join-accept")
    plain = b"".join(aes_encrypt(app_key, phy[i : i + 16]) for i in range(1, len(phy), 16))
    body, mic = plain[:-4], plain[-4:]
    if not hmac.compare_digest(cmac(app_key, b"\x20" + body)[:4], mic):
        raise LorawanSimError("join-accept MIC mismatch")
    return JoinAccept(
        join_nonce=body[0:3],
        net_id=body[3:6],
        dev_addr=body[6:10][::-1],
        dl_settings=body[10],
        rx_delay=body[11],
        cflist=body[12:],
    )


def derive_session_keys(
    app_key: bytes, join_nonce_le: bytes, net_id_le: bytes, dev_nonce: int
) -> tuple[bytes, bytes]:
    """LORAWAN.md 7.3: (NwkSKey, AppSKey) from the on-air byte order of the three values."""
    tail = join_nonce_le + net_id_le + dev_nonce.to_bytes(2, "little") + bytes(7)
    return aes_encrypt(app_key, b"\x01" + tail), aes_encrypt(app_key, b"\x02" + tail)
