"""Time on air: every value of the LORAWAN.md section 11 tables; the duty-cycle budget."""

from __future__ import annotations

import pytest

from gateway_agent.lorawan.airtime import (
    DutyCycleTracker,
    airtime_ms,
    low_data_rate_optimize,
    symbol_time_ms,
    symbols,
)
from gateway_agent.lorawan.region import EU868

SFS = (7, 8, 9, 10, 11, 12)

SYMBOL_MS = {
    125: (1.024, 2.048, 4.096, 8.192, 16.384, 32.768),
    250: (0.512, 1.024, 2.048, 4.096, 8.192, 16.384),
    500: (0.256, 0.512, 1.024, 2.048, 4.096, 8.192),
}
LDRO = {(125, 11), (125, 12), (250, 12)}

# (PL, BW) -> [(ms, payload symbols)] for SF7..SF12
TABLE = {
    (13, 125): [
        (46.336, 33),
        (82.432, 28),
        (164.864, 28),
        (288.768, 23),
        (577.536, 23),
        (1155.072, 23),
    ],
    (13, 250): [
        (23.168, 33),
        (41.216, 28),
        (82.432, 28),
        (144.384, 23),
        (288.768, 23),
        (577.536, 23),
    ],
    (13, 500): [
        (11.584, 33),
        (20.608, 28),
        (41.216, 28),
        (72.192, 23),
        (144.384, 23),
        (288.768, 23),
    ],
    (23, 125): [
        (61.696, 48),
        (113.152, 43),
        (205.824, 38),
        (370.688, 33),
        (823.296, 38),
        (1482.752, 33),
    ],
    (23, 250): [
        (30.848, 48),
        (56.576, 43),
        (102.912, 38),
        (185.344, 33),
        (370.688, 33),
        (741.376, 33),
    ],
    (23, 500): [
        (15.424, 48),
        (28.288, 43),
        (51.456, 38),
        (92.672, 33),
        (185.344, 33),
        (329.728, 28),
    ],
    (51, 125): [
        (102.656, 88),
        (184.832, 78),
        (328.704, 68),
        (616.448, 63),
        (1314.816, 68),
        (2465.792, 63),
    ],
    (51, 250): [
        (51.328, 88),
        (92.416, 78),
        (164.352, 68),
        (308.224, 63),
        (575.488, 58),
        (1232.896, 63),
    ],
    (51, 500): [
        (25.664, 88),
        (46.208, 78),
        (82.176, 68),
        (154.112, 63),
        (287.744, 58),
        (534.528, 53),
    ],
}

CASES = [
    (pl, bw, sf, ms, n)
    for (pl, bw), row in TABLE.items()
    for sf, (ms, n) in zip(SFS, row, strict=True)
]


@pytest.mark.parametrize(("pl", "bw", "sf", "ms", "n"), CASES)
def test_section_11_table(pl: int, bw: int, sf: int, ms: float, n: int) -> None:
    assert symbols(pl, sf, bw) == n
    assert airtime_ms(pl, sf, bw) == pytest.approx(ms, abs=1e-9)


@pytest.mark.parametrize("bw", [125, 250, 500])
@pytest.mark.parametrize("i", range(6))
def test_symbol_times_and_ldro(bw: int, i: int) -> None:
    sf = SFS[i]
    assert symbol_time_ms(sf, bw) == pytest.approx(SYMBOL_MS[bw][i])
    assert low_data_rate_optimize(sf, bw) == ((bw, sf) in LDRO)


def test_cross_checks() -> None:
    assert symbols(50, 12, 125) == 58  # brocaar/lorawan, LDRO on
    assert symbols(12, 7, 125, crc=False) == 28  # a downlink without CRC
    assert airtime_ms(12, 7, 125, crc=False) == pytest.approx(41.216)
    assert symbols(13, 7, 125, explicit_header=False) < symbols(13, 7, 125)
    with pytest.raises(ValueError, match="sf"):
        symbols(13, 13, 125)


def test_duty_cycle_tracker_sliding_hour() -> None:
    t = DutyCycleTracker(EU868.duty_cycle_limits)
    assert t.limits["g1"] == 0.01 and t.limits["g3"] == 0.10
    assert t.budget_ms("g1") == pytest.approx(36_000.0)
    assert t.available("g1", 30_000.0, 0.0)
    t.record("g1", 30_000.0, 0.0)
    assert not t.available("g1", 6_001.0, 10.0)
    assert t.available("g1", 6_000.0, 10.0)
    assert t.available("g3", 300_000.0, 10.0)  # another sub-band, its own budget
    assert not t.available("unknown", 1.0, 10.0)
    assert t.available("g1", 36_000.0, 3600.0)  # the first transmission slid out
    assert t.used_ms("g1", 3600.0) == 0.0
