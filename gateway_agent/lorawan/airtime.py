"""LoRa time on air (LORAWAN.md 11, Semtech's formula) and a downlink duty-cycle budget. Pure."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

LDRO_SYMBOL_MS = 16.0  # low-data-rate optimisation exactly when Tsym exceeds 16 ms


def symbol_time_ms(sf: int, bw_khz: int) -> float:
    """Tsym = 2^SF / BW."""
    return (1 << sf) / bw_khz


def low_data_rate_optimize(sf: int, bw_khz: int) -> bool:
    return symbol_time_ms(sf, bw_khz) > LDRO_SYMBOL_MS


def symbols(
    phy_len: int,
    sf: int,
    bw_khz: int,
    cr: int = 1,
    crc: bool = True,
    explicit_header: bool = True,
) -> int:
    """Number of payload symbols (n_payload, the 8 header symbols included)."""
    if not 6 <= sf <= 12 or bw_khz <= 0 or not 1 <= cr <= 4 or phy_len < 0:
        raise ValueError("sf 6..12, bw > 0, cr 1..4, phy_len >= 0")
    de = 1 if low_data_rate_optimize(sf, bw_khz) else 0
    num = 8 * phy_len - 4 * sf + 28 + 16 * int(crc) - 20 * int(not explicit_header)
    return 8 + max(math.ceil(num / (4 * (sf - 2 * de))) * (cr + 4), 0)


def airtime_ms(
    phy_len: int,
    sf: int,
    bw_khz: int,
    cr: int = 1,
    crc: bool = True,
    preamble: int = 8,
    explicit_header: bool = True,
) -> float:
    """Time on air in ms of a `phy_len`-byte PHYPayload. `crc` False for LoRaWAN downlinks."""
    tsym = symbol_time_ms(sf, bw_khz)
    n = symbols(phy_len, sf, bw_khz, cr, crc, explicit_header)
    return (preamble + 4.25) * tsym + n * tsym


class DutyCycleTracker:
    """Downlink airtime per sub-band over a sliding window (one hour by default).

    `limits` maps a sub-band name to its duty-cycle fraction (e.g. {"g1": 0.01, "g3": 0.1}); an
    unknown band has no budget. Time `now` is monotonic seconds, passed in.
    """

    __slots__ = ("_used", "limits", "window_s")

    def __init__(self, limits: Mapping[str, float], window_s: float = 3600.0) -> None:
        self.limits = dict(limits)
        self.window_s = window_s
        self._used: dict[str, deque[tuple[float, float]]] = {}

    def _expire(self, band: str, now: float) -> deque[tuple[float, float]]:
        q = self._used.setdefault(band, deque())
        while q and q[0][0] <= now - self.window_s:
            q.popleft()
        return q

    def used_ms(self, band: str, now: float) -> float:
        return sum(a for _, a in self._expire(band, now))

    def budget_ms(self, band: str) -> float:
        return self.limits.get(band, 0.0) * self.window_s * 1000.0

    def available(self, band: str, airtime_ms: float, now: float, share: float = 1.0) -> bool:
        """Whether transmitting `airtime_ms` now stays within `share` of the band's budget."""
        return self.used_ms(band, now) + airtime_ms <= self.budget_ms(band) * share

    def record(self, band: str, airtime_ms: float, now: float) -> None:
        self._expire(band, now).append((now, airtime_ms))
