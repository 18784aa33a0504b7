"""LoRa time on air (LORAWAN.md section 11, Semtech's formula). Pure."""

from __future__ import annotations

import math


def payload_symbols(
    pl: int, sf: int, bw_khz: int = 125, crc: bool = True, cr: int = 1, implicit: bool = False
) -> int:
    """Number of payload symbols for a PHYPayload of `pl` bytes."""
    de = 1 if (1 << sf) / (bw_khz * 1000) > 0.016 else 0
    num = 8 * pl - 4 * sf + 28 + 16 * int(crc) - 20 * int(implicit)
    return 8 + max(math.ceil(num / (4 * (sf - 2 * de))) * (cr + 4), 0)


def airtime_ms(
    pl: int,
    sf: int,
    bw_khz: int = 125,
    crc: bool = True,
    cr: int = 1,
    preamble: int = 8,
    implicit: bool = False,
) -> float:
    """Time on air in milliseconds. `crc` False for LoRaWAN downlinks."""
    tsym_ms = float(1 << sf) / bw_khz
    return (preamble + 4.25) * tsym_ms + payload_symbols(
        pl, sf, bw_khz, crc, cr, implicit
    ) * tsym_ms
