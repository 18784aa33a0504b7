"""Downlink data frames for a device session (LORAWAN.md 9). Pure.

The shell increments and persists FCntDown *before* calling this (LORAWAN.md 5.2).
"""

from __future__ import annotations

from gateway_agent.lorawan.frame import MType, build_data_frame
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
