"""Downlink data frames for a device session (LORAWAN.md 9) and the MAC answers they carry.
Pure.

The shell increments and persists FCntDown *before* calling this (LORAWAN.md 5.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway_agent.lorawan.frame import MType, build_data_frame
from gateway_agent.lorawan.mac import MacCommand, device_time_ans, link_check_ans, snr_margin_db
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.lorawan.session import DeviceSession


def build_downlink(
    session: DeviceSession,
    fcnt_down: int,
    *,
    ack: bool,
    f_port: int | None = None,
    payload: bytes = b"",
    fopts: bytes = b"",
    confirmed: bool = False,
    f_pending: bool = False,
    adr: bool = False,
) -> bytes:
    """The on-air PHYPayload of a downlink (Dir = 1, MIC over the 32-bit `fcnt_down`).

    With nothing to send but an ACK this is the 12-byte UnconfirmedDataDown of W6. Raises
    `FrameError` (reason "bad_build") for an impossible frame.
    """
    mtype = MType.ConfirmedDataDown if confirmed else MType.UnconfirmedDataDown
    return build_data_frame(
        mtype,
        session.dev_addr,
        fcnt_down,
        nwk_s_key=session.nwk_s_key,
        app_s_key=session.app_s_key,
        f_port=f_port,
        payload=payload,
        fopts=fopts,
        adr=adr,
        ack=ack,
        f_pending=f_pending,
    )


# -- MAC requests the network answers itself (LORAWAN.md 8) ---------------------------------

GPS_EPOCH_UNIX_S = 315_964_800  # 1980-01-06T00:00:00Z
GPS_MINUS_UTC_S = 18  # leap seconds between GPS and UTC since 2017-01-01 (none announced since)


def gps_time(unix_s: float) -> tuple[int, int]:
    """Unix time -> (whole seconds since the GPS epoch, fraction in units of 1/256 s)."""
    t = unix_s - GPS_EPOCH_UNIX_S + GPS_MINUS_UTC_S
    whole = int(t // 1)
    return whole, min(255, int((t - whole) * 256))


def mac_answers(
    commands: Sequence[MacCommand], rx: Sequence[RxInfo], uplink_unix_s: float
) -> tuple[bytes, tuple[str, ...]]:
    """FOpts answering the uplink's LinkCheckReq and DeviceTimeReq (each at most once), and the
    names answered. LinkCheckAns: the best reception's margin above its SF's demodulation floor
    and the number of gateways that heard the frame. DeviceTimeAns: `uplink_unix_s`, the time
    the uplink was received (LoRaWAN 1.0.3: the end of its transmission)."""
    out = b""
    names: list[str] = []
    for cmd in commands:
        if cmd.name == "LinkCheckReq" and "LinkCheckAns" not in names:
            best = rx[0] if rx else None
            margin = 0
            if best is not None and best.snr_db is not None and best.sf is not None:
                margin = snr_margin_db(best.snr_db, best.sf)
            out += link_check_ans(margin, len({r.gateway_id for r in rx}))
            names.append("LinkCheckAns")
        elif cmd.name == "DeviceTimeReq" and "DeviceTimeAns" not in names:
            out += device_time_ans(*gps_time(uplink_unix_s))
            names.append("DeviceTimeAns")
    return out, tuple(names)
