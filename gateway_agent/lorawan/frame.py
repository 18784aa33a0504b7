"""PHYPayload codec for LoRaWAN 1.0.x (LORAWAN.md 1-2). Pure.

On air every multi-byte field is little-endian; dataclass fields hold identifiers big-endian,
as people write them. The codec reverses them exactly once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from gateway_agent.errors import FrameError
from gateway_agent.lorawan.crypto import SessionCrypto
from gateway_agent.lorawan.frozen import fast_constructor

MAX_PHY_LEN = 255
MIN_DATA_LEN = 12  # MHDR + 7-byte FHDR + MIC
JOIN_REQUEST_LEN = 23
JOIN_ACCEPT_LENS = (17, 33)
MAX_FCNT32 = 0xFFFFFFFF

MAX_FOPTS = 15  # FCtrl.FOptsLen is four bits


class MType(IntEnum):
    JoinRequest = 0
    JoinAccept = 1
    UnconfirmedDataUp = 2
    UnconfirmedDataDown = 3
    ConfirmedDataUp = 4
    ConfirmedDataDown = 5
    RFU = 6
    Proprietary = 7

    @property
    def label(self) -> str:
        """The DESIGN.md spelling, e.g. "UnconfirmedDataUp"."""
        return self.name

    @property
    def is_data(self) -> bool:
        return 2 <= self.value <= 5

    @property
    def uplink(self) -> bool:
        """True for device -> network types (Proprietary counts as uplink: it is what we hear)."""
        return self.value in (0, 2, 4, 6, 7)

    @property
    def confirmed(self) -> bool:
        return self.value in (4, 5)


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A parsed data frame (MType 2-5). `frm_payload` is as on air (encrypted)."""

    mtype: MType
    dev_addr: bytes  # 4 bytes, big-endian as written
    adr: bool
    adr_ack_req: bool  # uplink bit 6 (RFU in downlinks)
    ack: bool
    f_pending: bool  # bit 4: FPending on downlinks, ClassB on uplinks
    fopts: bytes
    fcnt16: int
    f_port: int | None
    frm_payload: bytes
    mic: bytes
    raw: bytes

    @property
    def msg(self) -> bytes:
        """What the MIC covers: the PHYPayload without its last 4 bytes."""
        return self.raw[:-4]

    @property
    def uplink(self) -> bool:
        return self.mtype in (MType.UnconfirmedDataUp, MType.ConfirmedDataUp)

    @property
    def confirmed(self) -> bool:
        return self.mtype in (MType.ConfirmedDataUp, MType.ConfirmedDataDown)

    @property
    def class_b(self) -> bool:
        return self.f_pending


@dataclass(frozen=True, slots=True)
class JoinRequest:
    join_eui: bytes  # 8 bytes, big-endian
    dev_eui: bytes  # 8 bytes, big-endian
    dev_nonce: int
    mic: bytes
    raw: bytes

    @property
    def mtype(self) -> MType:
        return MType.JoinRequest

    @property
    def msg(self) -> bytes:
        return self.raw[:-4]


@dataclass(frozen=True, slots=True)
class JoinAcceptRaw:
    """A join-accept as heard on air: encrypted, readable only with the AppKey (see join.py)."""

    raw: bytes

    @property
    def mtype(self) -> MType:
        return MType.JoinAccept


@dataclass(frozen=True, slots=True)
class ProprietaryFrame:
    """MType 7: no standard MACPayload or MIC; passed through as bytes."""

    raw: bytes

    @property
    def mtype(self) -> MType:
        return MType.Proprietary

    @property
    def payload(self) -> bytes:
        return self.raw[1:]


PhyFrame = DataFrame | JoinRequest | JoinAcceptRaw | ProprietaryFrame


def parse_phy(data: bytes) -> PhyFrame:
    """Parse a PHYPayload. Raises only `FrameError` (reason: too_short, too_long, bad_major,
    rfu_mtype, bad_length, fopts_truncated, fport0_with_fopts).

    FPort 225..255 (RFU) parses; `session.verify_uplink` rejects it with reason "fport_rfu".
    """
    if type(data) is not bytes:
        if not isinstance(data, bytearray | memoryview):
            raise FrameError("PHYPayload must be bytes", reason="malformed")
        data = bytes(data)
    n = len(data)
    if n < MIN_DATA_LEN or n > MAX_PHY_LEN:
        return _parse_odd_length(data)
    mhdr = data[0]
    mtype = _MTYPES[mhdr >> 5]
    if mhdr & 0x03 or not 2 <= mhdr >> 5 <= 5:
        return _parse_other(data, mtype)
    fctrl = data[5]
    fopts_len = fctrl & 0x0F
    end = n - 4
    port_at = 8 + fopts_len
    if port_at > end:
        raise FrameError("FOptsLen runs past the MIC", reason="fopts_truncated")
    f_port: int | None = None
    if port_at < end:
        f_port = data[port_at]
        if f_port == 0 and fopts_len:
            raise FrameError("FPort 0 with FOpts", reason="fport0_with_fopts")
    return _new_data_frame(
        mtype,
        data[4:0:-1],
        bool(fctrl & 0x80),
        bool(fctrl & 0x40),
        bool(fctrl & 0x20),
        bool(fctrl & 0x10),
        data[8:port_at],
        data[6] | (data[7] << 8),
        f_port,
        data[port_at + 1 : end] if f_port is not None else b"",
        data[end:],
        data,
    )


_MTYPES = tuple(MType)
_new_data_frame = fast_constructor(DataFrame)


def _parse_odd_length(data: bytes) -> PhyFrame:
    n = len(data)
    if n < 1:
        raise FrameError("empty PHYPayload", reason="too_short")
    if n > MAX_PHY_LEN:
        raise FrameError(f"PHYPayload of {n} bytes exceeds 255", reason="too_long")
    mtype = _MTYPES[data[0] >> 5]
    if not data[0] & 0x03 and mtype.is_data:
        raise FrameError(f"data frame of {n} bytes, minimum 12", reason="too_short")
    return _parse_other(data, mtype)


def _parse_other(data: bytes, mtype: MType) -> PhyFrame:
    """Everything but a well-sized data frame: bad major, RFU, joins, proprietary."""
    n = len(data)
    if data[0] & 0x03:
        raise FrameError(f"unknown LoRaWAN major version {data[0] & 3}", reason="bad_major")
    if mtype is MType.Proprietary:
        return ProprietaryFrame(data)
    if mtype is MType.RFU:
        raise FrameError("MType 6 is RFU in LoRaWAN 1.0.x", reason="rfu_mtype")
    if mtype is MType.JoinRequest:
        if n != JOIN_REQUEST_LEN:
            raise FrameError(f"join-request of {n} bytes, expected 23", reason="bad_length")
        return JoinRequest(
            join_eui=data[1:9][::-1],
            dev_eui=data[9:17][::-1],
            dev_nonce=int.from_bytes(data[17:19], "little"),
            mic=data[19:23],
            raw=data,
        )
    if n not in JOIN_ACCEPT_LENS:
        raise FrameError(f"join-accept of {n} bytes, expected 17 or 33", reason="bad_length")
    return JoinAcceptRaw(data)


def build_data_frame(
    mtype: MType,
    dev_addr: bytes,
    fcnt32: int,
    *,
    nwk_s_key: bytes,
    app_s_key: bytes | None = None,
    f_port: int | None = None,
    payload: bytes = b"",
    fopts: bytes = b"",
    adr: bool = False,
    adr_ack_req: bool = False,
    ack: bool = False,
    f_pending: bool = False,
) -> bytes:
    """Build any data frame (uplink or downlink): encrypts `payload` (plaintext FRMPayload) with
    the key chosen by FPort and appends the MIC computed over the 32-bit `fcnt32`.

    `dev_addr` big-endian. `f_pending` is ClassB on uplinks. Raises `FrameError` (reason
    "bad_build") for an impossible frame: payload without FPort, FPort 0 with FOpts, FOpts over
    15 bytes, a frame over 255 bytes, or no AppSKey for FPort > 0.
    """
    mtype = MType(mtype)
    if not mtype.is_data:
        raise FrameError(f"{mtype.label} is not a data frame", reason="bad_build")
    if len(dev_addr) != 4:
        raise FrameError("DevAddr is 4 bytes", reason="bad_build")
    if not 0 <= fcnt32 <= MAX_FCNT32:
        raise FrameError("frame counter out of 32-bit range", reason="bad_build")
    if len(fopts) > MAX_FOPTS:
        raise FrameError("FOpts hold at most 15 bytes", reason="bad_build")
    if f_port is None and payload:
        raise FrameError("a FRMPayload needs an FPort", reason="bad_build")
    if f_port is not None and not 0 <= f_port <= 255:
        raise FrameError("FPort is one byte", reason="bad_build")
    if f_port == 0 and fopts:
        raise FrameError("FPort 0 cannot go with FOpts", reason="bad_build")
    size = 8 + len(fopts) + (1 + len(payload) if f_port is not None else 0) + 4
    if size > MAX_PHY_LEN:
        raise FrameError(f"frame of {size} bytes exceeds 255", reason="bad_build")
    if f_port and app_s_key is None:
        raise FrameError("FPort > 0 needs the AppSKey", reason="bad_build")
    uplink = mtype.uplink
    crypto = SessionCrypto(nwk_s_key, app_s_key if app_s_key is not None else nwk_s_key)
    fctrl = (adr << 7) | (adr_ack_req << 6) | (ack << 5) | (f_pending << 4) | len(fopts)
    msg = (
        bytes((mtype << 5,))
        + dev_addr[::-1]
        + bytes((fctrl,))
        + (fcnt32 & 0xFFFF).to_bytes(2, "little")
        + bytes(fopts)
    )
    if f_port is not None:
        msg += bytes((f_port,)) + crypto.crypt(f_port, uplink, dev_addr, fcnt32, bytes(payload))
    return msg + crypto.mic(uplink, dev_addr, fcnt32, msg)
