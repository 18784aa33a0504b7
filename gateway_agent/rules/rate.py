"""`rate`: a rise (or fall) of at least `rise` (`fall`) within `per`, e.g. 100 mm per 15 min. Pure.

The state keeps the samples inside the window plus one anchor older than it (bounded, thinned
past `MAX_SAMPLES`). With sparse uplinks the anchor gives the average slope, scaled to `per`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway_agent.model import Reading
from gateway_agent.rules.duration import format_duration
from gateway_agent.rules.kind import kind
from gateway_agent.rules.levels import LevelKind, measurement_value, timing
from gateway_agent.rules.lifecycle import Verdict, num
from gateway_agent.rules.rule import Params, Rule
from gateway_agent.rules.state import RuleState
from gateway_agent.rules.table import Table

MAX_SAMPLES = 64
# An anchor further back than this many windows says nothing about a sudden change.
ANCHOR_WINDOWS = 2.0


@dataclass(frozen=True, slots=True)
class RateParams(Params):
    measurement: str = ""
    amount: float = 0.0  # the rise (or fall) that raises, in the measurement's unit
    falling: bool = False
    per_s: float = 0.0
    clear: float = 0.0  # the change within `per` below which it clears (default amount / 2)


def _thin(samples: list[tuple[float, float]]) -> list[tuple[float, float]]:
    # Drop every other sample of the older half: keeps the window's span and its newest detail.
    half = len(samples) // 2
    return samples[:half][::2] + samples[half:]


def change(
    samples: list[tuple[float, float]], now: float, x: float, per_s: float, falling: bool
) -> float:
    """The largest rise (fall: drop) to `x` now from any sample within `per_s`, or the anchor's
    slope scaled to `per_s`."""
    sign = -1.0 if falling else 1.0
    best = 0.0
    for t, v in samples:
        age = now - t
        if age <= per_s:
            best = max(best, sign * (x - v))
        elif age <= ANCHOR_WINDOWS * per_s and age > 0:
            best = max(best, sign * (x - v) * per_s / age)
    return best


@kind("rate")
class Rate(LevelKind):
    series_keys = ("samples",)  # (time, value) pairs in `data`, moved by a clock step (clock.py)

    def parse(self, t: Table) -> RateParams:
        m = t.string("measurement", required=True)
        rise, fall = t.number("rise", lo=0.0), t.number("fall", lo=0.0)
        if (rise is None) == (fall is None):
            raise t.fail("rise", "give exactly one of rise or fall")
        amount = rise if rise is not None else fall
        assert amount is not None and m is not None
        if amount <= 0:
            raise t.fail("rise" if rise is not None else "fall", "must be greater than 0")
        per_s = t.duration("per", required=True)
        assert per_s is not None
        if per_s <= 0:
            raise t.fail("per", "must be longer than 0s")
        clear = t.number("clear", amount / 2, lo=0.0)
        assert clear is not None
        if clear > amount:
            raise t.fail("clear", f"must not exceed the {'rise' if rise else 'fall'} ({amount:g})")
        for_s, clear_for_s = timing(t)
        return RateParams(for_s, clear_for_s, m, amount, fall is not None, per_s, clear)

    def verdict(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, Verdict | None]:
        p = rule.params
        assert isinstance(p, RateParams)
        x = measurement_value(reading, p.measurement)
        if x is None:
            return st, None
        raw: Any = st.data.get("samples", ())
        samples = [(float(s[0]), float(s[1])) for s in raw if s[0] <= now]
        d = change(samples, now, x, p.per_s, p.falling)
        # Keep the window and the newest sample older than it (the anchor).
        inside = [s for s in samples if now - s[0] <= p.per_s]
        older = [s for s in samples if now - s[0] > p.per_s]
        kept = older[-1:] + inside + [(now, x)]
        while len(kept) > MAX_SAMPLES:
            kept = _thin(kept)
        st = st.with_data(samples=tuple(kept))
        word = "fell" if p.falling else "rose"
        return st, Verdict(
            d >= p.amount,
            d < p.clear,
            p.measurement,
            x,
            f"{p.measurement} {word} {num(d)} within {format_duration(p.per_s)} "
            f"(limit {num(p.amount)}), now {num(x)}",
        )
