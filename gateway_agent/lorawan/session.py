"""Uplink verification: DevAddr -> session, FCnt32, MIC, decryption (LORAWAN.md 3-6). Pure.

Returns decisions; the shell commits `UplinkAccepted.new_session` together with the reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from hmac import compare_digest

from gateway_agent.lorawan.crypto import KeyContext, SessionCrypto, crypt_le, key_context, mic_le
from gateway_agent.lorawan.fcnt import MAX_FCNT32, reconstruct, relaxed_reset
from gateway_agent.lorawan.frame import DataFrame, MType
from gateway_agent.lorawan.frozen import fast_constructor
from gateway_agent.lorawan.mac import MacCommand, parse_mac_commands
from gateway_agent.lorawan.sessionid import session_id, session_tag


@dataclass(frozen=True, slots=True)
class DeviceSession:
    """One device session. Keys are secret: excluded from repr.

    `id_prefix` (`{dev_eui}-{session tag}-`, sessionid.py) starts the id of every reading of this
    session: made once here, so the per-uplink path only appends the FCnt."""

    dev_eui: bytes
    dev_addr: bytes
    nwk_s_key: bytes
    app_s_key: bytes
    fcnt_up: int | None  # FCnt32 of the last accepted uplink; None for a fresh session
    fcnt_down: int = 0
    relaxed_fcnt: bool = False  # accept counter resets (weakens replay protection; fcnt.py)
    reset_epoch: int = 0  # counter resets accepted in this session (relaxed mode), persisted
    id_prefix: str = field(init=False, default="")

    def __post_init__(self) -> None:
        if len(self.dev_eui) != 8:
            raise ValueError("dev_eui must be 8 bytes")
        if len(self.dev_addr) != 4:
            raise ValueError("dev_addr must be 4 bytes")
        if len(self.nwk_s_key) != 16 or len(self.app_s_key) != 16:
            raise ValueError("session keys must be 16 bytes")
        if self.fcnt_up is not None and not 0 <= self.fcnt_up <= MAX_FCNT32:
            raise ValueError("fcnt_up out of 32-bit range")
        if not 0 <= self.fcnt_down <= MAX_FCNT32:
            raise ValueError("fcnt_down out of 32-bit range")
        if self.reset_epoch < 0:
            raise ValueError("reset_epoch must not be negative")
        sid = session_id(self.dev_addr, self.nwk_s_key, self.app_s_key)
        prefix = f"{self.dev_eui.hex()}-{session_tag(sid, self.reset_epoch)}-"
        object.__setattr__(self, "id_prefix", prefix)

    def __repr__(self) -> str:
        return (
            f"DeviceSession(dev_eui={self.dev_eui.hex()}, dev_addr={self.dev_addr.hex()}, "
            f"fcnt_up={self.fcnt_up}, fcnt_down={self.fcnt_down}, "
            f"reset_epoch={self.reset_epoch}, keys=<redacted>)"
        )

    @property
    def crypto(self) -> SessionCrypto:
        return SessionCrypto(self.nwk_s_key, self.app_s_key)

    def with_fcnt_up(self, fcnt_up: int) -> DeviceSession:
        """This session with `fcnt_up` advanced (the per-uplink path: only the counter is new,
        so only it is checked; `dataclasses.replace` would cost ~5 us)."""
        if not 0 <= fcnt_up <= MAX_FCNT32:
            raise ValueError("fcnt_up out of 32-bit range")
        return _new_session(
            self.dev_eui,
            self.dev_addr,
            self.nwk_s_key,
            self.app_s_key,
            fcnt_up,
            self.fcnt_down,
            self.relaxed_fcnt,
            self.reset_epoch,
            self.id_prefix,
        )

    def with_fcnt_down(self, fcnt_down: int) -> DeviceSession:
        """This session with `fcnt_down` taken (per answer: no re-check, no new id prefix)."""
        if not 0 <= fcnt_down <= MAX_FCNT32:
            raise ValueError("fcnt_down out of 32-bit range")
        return _new_session(
            self.dev_eui,
            self.dev_addr,
            self.nwk_s_key,
            self.app_s_key,
            self.fcnt_up,
            fcnt_down,
            self.relaxed_fcnt,
            self.reset_epoch,
            self.id_prefix,
        )

    def with_counter(self, fcnt_up: int | None, reset_epoch: int) -> DeviceSession:
        """This session at `fcnt_up` in its `reset_epoch`-th counter run (a reset accepted, or
        one staged again after a reload): the id prefix is made again."""
        return DeviceSession(
            self.dev_eui,
            self.dev_addr,
            self.nwk_s_key,
            self.app_s_key,
            fcnt_up,
            self.fcnt_down,
            self.relaxed_fcnt,
            reset_epoch,
        )


_new_session = fast_constructor(DeviceSession)


@dataclass(frozen=True, slots=True)
class UplinkAccepted:
    session: DeviceSession  # the session whose MIC verified (state before this uplink)
    fcnt: int  # FCnt32
    f_port: int | None
    payload: bytes  # decrypted FRMPayload (FPort 0: with the NwkSKey)
    confirmed: bool
    mac_commands: tuple[MacCommand, ...]
    adr: bool
    adr_ack_req: bool
    new_session: DeviceSession  # fcnt_up advanced; commit it with the reading
    fcnt_reset: bool = False  # accepted as a counter reset (relaxed mode): log it loudly

    @property
    def reading_id(self) -> str:
        """The id of this uplink's reading (DESIGN.md invariant 2, sessionid.py)."""
        return self.new_session.id_prefix + str(self.fcnt)


@dataclass(frozen=True, slots=True)
class UplinkRetransmission:
    """Same FCnt32 as the last accepted uplink, valid MIC: ACK again if confirmed, no reading."""

    session: DeviceSession
    fcnt: int
    confirmed: bool


@dataclass(frozen=True, slots=True)
class UplinkRejected:
    """reason: mic | replay | unknown_device | exhausted | fport_rfu | not_uplink."""

    reason: str


UplinkResult = UplinkAccepted | UplinkRetransmission | UplinkRejected
_new_accepted = fast_constructor(UplinkAccepted)

# When no session verifies, the most telling reason wins.
_REASON_RANK = {"replay": 0, "exhausted": 1, "mic": 2}


def verify_uplink(
    frame: DataFrame, sessions: Sequence[DeviceSession], max_fcnt_gap: int
) -> UplinkResult:
    """Decide what an uplink data frame is. Never raises for expected outcomes.

    Cheap checks (direction, FPort, DevAddr, counter window) come before any crypto. Of several
    sessions sharing the DevAddr, the one whose MIC verifies wins (LORAWAN.md pitfall 11).
    """
    mtype = frame.mtype
    if mtype is not MType.UnconfirmedDataUp and mtype is not MType.ConfirmedDataUp:
        return UplinkRejected("not_uplink")
    f_port = frame.f_port
    if f_port is not None and f_port > 224:
        return UplinkRejected("fport_rfu")
    dev_addr = frame.dev_addr
    raw = frame.raw
    msg = raw[:-4]
    addr_le = raw[1:5]
    fcnt16 = frame.fcnt16
    reason: str | None = None
    for s in sessions:
        if s.dev_addr != dev_addr:
            continue
        checks = [reconstruct(s.fcnt_up, fcnt16, max_fcnt_gap)]
        if s.relaxed_fcnt:
            reset = relaxed_reset(s.fcnt_up, fcnt16, max_fcnt_gap)
            if reset is not None:
                checks.append((reset.candidate, reset.kind))
        for candidate, kind in checks:
            if kind == "replay" or kind == "exhausted":
                reason = _worst(reason, kind)
                continue
            nwk = key_context(s.nwk_s_key)
            if not compare_digest(mic_le(nwk, 0, addr_le, candidate, msg), frame.mic):
                reason = _worst(reason, "mic")
                continue
            if kind == "retransmission":
                return UplinkRetransmission(s, candidate, mtype is MType.ConfirmedDataUp)
            return _accept(frame, s, nwk, addr_le, candidate, kind == "reset")
    return UplinkRejected(reason or "unknown_device")


def _worst(current: str | None, new: str) -> str:
    if current is None or _REASON_RANK[new] < _REASON_RANK[current]:
        return new
    return current


def _accept(
    frame: DataFrame,
    s: DeviceSession,
    nwk: KeyContext,
    addr_le: bytes,
    fcnt: int,
    reset: bool,
) -> UplinkAccepted:
    f_port = frame.f_port
    payload = b""
    if f_port is not None:
        ctx = nwk if f_port == 0 else key_context(s.app_s_key)
        payload = crypt_le(ctx, 0, addr_le, fcnt, frame.frm_payload)
    mac_src = payload if f_port == 0 else frame.fopts
    mac = parse_mac_commands(mac_src, True, lenient=True) if mac_src else ()
    return _new_accepted(
        s,
        fcnt,
        f_port,
        payload,
        frame.mtype is MType.ConfirmedDataUp,
        mac,
        frame.adr,
        frame.adr_ack_req,
        s.with_counter(fcnt, s.reset_epoch + 1) if reset else s.with_fcnt_up(fcnt),
        reset,
    )
