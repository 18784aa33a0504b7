"""An accepted uplink as a `Reading`: the device's codec decodes the payload; a decode failure
is counted and kept on the reading, never fatal."""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import Any

import decoders
from gateway_agent.errors import CodecError
from gateway_agent.logfmt import RateLimitedLog
from gateway_agent.lorawan.frozen import fast_constructor
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.lorawan.session import UplinkAccepted
from gateway_agent.metrics import Counters
from gateway_agent.model import Device, Reading

WALL_CLOCK_VALID_AFTER = 1_700_000_000.0  # 2023-11: a Pi that booted without NTP says 1970
_EMPTY: Any = MappingProxyType({})
_new_reading = fast_constructor(Reading)


def build_reading(
    gateway_id: str,
    dev: Device,
    res: UplinkAccepted,
    rx: tuple[RxInfo, ...],
    counters: Counters,
    limiter: RateLimitedLog,
) -> Reading:
    """The reading of `res`, timed at its first reception (the agent's wall clock). Its id names
    the frame, not this gateway (`res.reading_id`, DESIGN.md invariant 2): `gateway_id` is no
    part of it."""
    # When the radio heard it (the agent's clock at reception), not when a busy loop got to
    # it: a backlog in the frame queue must not shift reading times.
    now = min(x.rx_wall for x in rx) if rx else time.time()
    dec: decoders.Decoded | None = None
    err: str | None = None
    if res.f_port and dev.codec:
        try:
            dec = decoders.decode(dev.codec, res.f_port, res.payload, dev.settings)
        except CodecError as e:
            err = str(e)
            counters.inc("decode_errors", codec=dev.codec, dev_eui=dev.dev_eui.hex())
            limiter.warn(
                "decode_failed",
                key=f"decode:{dev.dev_eui.hex()}",
                dev_eui=dev.dev_eui.hex(),
                codec=dev.codec,
                reason=e.reason,
            )
    # Every value is already valid (device and session EUIs/addresses, the codec's frozen
    # mappings shared as they are): the positional constructor skips the re-checks.
    return _new_reading(
        res.new_session.id_prefix + str(res.fcnt),
        dev.dev_eui,
        res.session.dev_addr,
        res.fcnt,
        res.f_port,
        res.payload,
        now,
        now > WALL_CLOCK_VALID_AFTER,
        res.confirmed,
        dev.codec,
        dec.measurements if dec is not None else _EMPTY,
        dec.flags if dec is not None else _EMPTY,
        dec.extras if dec is not None else _EMPTY,
        dec.object if dec is not None else _EMPTY,
        err,
        rx,
    )
