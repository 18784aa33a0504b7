"""Uplink frame-counter reconstruction: 16 bits on air -> FCnt32 (LORAWAN.md 5.1-5.2). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MAX_FCNT32 = 0xFFFFFFFF
DEFAULT_MAX_FCNT_GAP = 16384  # MAX_FCNT_GAP of LoRaWAN 1.0.0-1.0.3

FcntKind = Literal["new", "retransmission", "replay", "exhausted", "reset"]


@dataclass(frozen=True, slots=True)
class FcntCheck:
    """The counter to try in B0 (`candidate`) and what it would mean.

    new: ahead of the last accepted counter, within the gap (verify the MIC with `candidate`);
    retransmission: equal to the last accepted one (never a new reading);
    replay: behind it, or further ahead than `max_gap` (reject without crypto);
    exhausted: past 2^32 - 1 (the device must rejoin);
    reset: relaxed mode only, a restarted ABP device (see `relaxed_reset`).
    """

    candidate: int
    kind: FcntKind


def reconstruct_fcnt(last: int | None, fcnt16: int, max_gap: int) -> FcntCheck:
    """Reconstruct FCnt32 from the 16-bit `fcnt16` given the last accepted FCnt32 (None: fresh)."""
    if not 0 <= fcnt16 <= 0xFFFF:
        raise ValueError("fcnt16 must be a 16-bit value")
    return FcntCheck(*reconstruct(last, fcnt16, max_gap))


def reconstruct(last: int | None, fcnt16: int, max_gap: int) -> tuple[int, FcntKind]:
    """`reconstruct_fcnt` as a plain (candidate, kind) tuple, for the per-uplink path."""
    if last is None:
        return fcnt16, "new"
    forward = (fcnt16 - (last & 0xFFFF)) & 0xFFFF
    if forward == 0:
        return last, "retransmission"
    candidate = last + forward
    if forward > max_gap:
        return candidate, "replay"
    if candidate > MAX_FCNT32:
        return candidate, "exhausted"
    return candidate, "new"


def relaxed_reset(last: int | None, fcnt16: int, max_gap: int) -> FcntCheck | None:
    """The extra candidate of the per-device "relaxed frame counter" mode (off by default).

    An ABP device that lost power restarts at FCnt 0. In relaxed mode a frame whose counter is
    below the last accepted one, but small (<= `max_gap`, MSB taken as 0), is tried as a counter
    reset; it is accepted only if the MIC verifies with it. This WEAKENS REPLAY PROTECTION: any
    recorded frame with a small counter can be replayed once the device has moved past it.
    Returns None when no reset candidate applies.
    """
    if last is None or fcnt16 > max_gap or fcnt16 >= last:
        return None
    return FcntCheck(fcnt16, "reset")
