"""Level kinds: `threshold`, `band`, `battery`. Each reading gives a verdict; lifecycle does the rest.

`above` fires at or above the limit and `below` strictly below it, so a guideline "must stay
below L" is `above = L` and "must be at least L" is `below = L`. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import lifecycle
from gateway_agent.rules.duration import format_duration
from gateway_agent.rules.kind import kind
from gateway_agent.rules.lifecycle import Verdict, num
from gateway_agent.rules.rule import Params, Rule
from gateway_agent.rules.state import RuleState
from gateway_agent.rules.table import Table


def measurement_value(reading: Reading, name: str) -> float | None:
    """The finite numeric value of `name` in the reading, else None."""
    v = reading.measurements.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def timing(t: Table) -> tuple[float, float]:
    """`for` (default 0) and `clear_for` (default: the same as `for`, so clearing is debounced
    as much as raising)."""
    for_s = t.duration("for", 0.0)
    assert for_s is not None
    clear_for_s = t.duration("clear_for", for_s)
    assert clear_for_s is not None
    return for_s, clear_for_s


def _held(for_s: float) -> str:
    return f" for {format_duration(for_s)}" if for_s > 0 else ""


class LevelKind:
    """Shared evaluate/tick/next_due for kinds whose readings map to a Verdict."""

    def verdict(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, Verdict | None]:
        raise NotImplementedError

    def evaluate(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, list[Alert]]:
        st, v = self.verdict(rule, st, reading, now)
        p = rule.params
        return lifecycle.step(rule, st, reading.dev_eui, now, v, p.for_s, p.clear_for_s)

    def tick(
        self, rule: Rule, st: RuleState, device: Device, now: float
    ) -> tuple[RuleState, list[Alert]]:
        p = rule.params
        return lifecycle.timers(rule, st, device.dev_eui, now, p.for_s, p.clear_for_s)

    def next_due(self, rule: Rule, st: RuleState) -> float | None:
        return lifecycle.due(st, rule.params.for_s, rule.params.clear_for_s)


@dataclass(frozen=True, slots=True)
class ThresholdParams(Params):
    measurement: str = ""
    above: float | None = None
    below: float | None = None
    clear: float | None = None  # hysteresis level; default: the limit itself


@kind("threshold")
class Threshold(LevelKind):
    def parse(self, t: Table) -> ThresholdParams:
        m = t.string("measurement", required=True)
        above, below, clear = t.number("above"), t.number("below"), t.number("clear")
        if (above is None) == (below is None):
            raise t.fail("above", "give exactly one of above or below")
        if above is not None and clear is not None and clear > above:
            raise t.fail(
                "clear",
                f"must not be above the limit {above:g} (it is the level to fall below to clear)",
            )
        if below is not None and clear is not None and clear < below:
            raise t.fail(
                "clear",
                f"must not be below the limit {below:g} (it is the level to rise to to clear)",
            )
        for_s, clear_for_s = timing(t)
        assert m is not None
        return ThresholdParams(for_s, clear_for_s, m, above, below, clear)

    def verdict(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, Verdict | None]:
        p = rule.params
        assert isinstance(p, ThresholdParams)
        x = measurement_value(reading, p.measurement)
        if x is None:
            return st, None
        if p.above is not None:
            clear = p.above if p.clear is None else p.clear
            return st, Verdict(
                x >= p.above,
                x < clear,
                p.measurement,
                x,
                f"{p.measurement} {num(x)} at or above {num(p.above)}{_held(p.for_s)}",
            )
        assert p.below is not None
        clear = p.below if p.clear is None else p.clear
        return st, Verdict(
            x < p.below,
            x >= clear,
            p.measurement,
            x,
            f"{p.measurement} {num(x)} below {num(p.below)}{_held(p.for_s)}",
        )


@dataclass(frozen=True, slots=True)
class BandParams(Params):
    measurement: str = ""
    low: float = 0.0
    high: float = 0.0
    inside: bool = False  # True: alert while inside [low, high]; False: while outside it
    margin: float = 0.0  # hysteresis: how far back across an edge the value must go to clear


@kind("band")
class Band(LevelKind):
    def parse(self, t: Table) -> BandParams:
        m = t.string("measurement", required=True)
        low, high = t.need_number("low"), t.need_number("high")
        if high <= low:
            raise t.fail("high", f"must be greater than low ({low:g})")
        inside = t.boolean("inside", False)
        margin = t.number("margin", 0.0, lo=0.0)
        assert m is not None and margin is not None
        if not inside and 2 * margin >= high - low:
            raise t.fail("margin", "must be less than half the band width")
        for_s, clear_for_s = timing(t)
        return BandParams(for_s, clear_for_s, m, low, high, inside, margin)

    def verdict(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, Verdict | None]:
        p = rule.params
        assert isinstance(p, BandParams)
        x = measurement_value(reading, p.measurement)
        if x is None:
            return st, None
        within = p.low <= x <= p.high
        rng = f"[{num(p.low)}, {num(p.high)}]"
        if p.inside:
            good = x < p.low - p.margin or x > p.high + p.margin
            return st, Verdict(
                within,
                good,
                p.measurement,
                x,
                f"{p.measurement} {num(x)} inside {rng}{_held(p.for_s)}",
            )
        good = p.low + p.margin <= x <= p.high - p.margin
        return st, Verdict(
            not within,
            good,
            p.measurement,
            x,
            f"{p.measurement} {num(x)} outside {rng}{_held(p.for_s)}",
        )


@dataclass(frozen=True, slots=True)
class BatteryParams(Params):
    below_v: float | None = None
    below_pct: float | None = None
    clear_v: float | None = None
    clear_pct: float | None = None


@kind("battery")
class Battery(LevelKind):
    """Low battery from `battery_v` and/or `battery_pct`; either one low raises, all present and
    back above their clear levels clears (cells recover a little when warm: hence hysteresis)."""

    def parse(self, t: Table) -> BatteryParams:
        bv, bp = t.number("below_v", lo=0.0, hi=100.0), t.number("below_pct", lo=0.0, hi=100.0)
        if bv is None and bp is None:
            raise t.fail("below_v", "give below_v and/or below_pct")
        cv = t.number("clear_v", None if bv is None else bv + 0.1, lo=0.0, hi=100.0)
        cp = t.number("clear_pct", None if bp is None else min(100.0, bp + 5.0), lo=0.0, hi=100.0)
        if bv is None and t.has("clear_v") or bp is None and t.has("clear_pct"):
            raise t.fail("clear_v" if bv is None else "clear_pct", "has no matching below_ key")
        if bv is not None and cv is not None and cv < bv:
            raise t.fail("clear_v", f"must not be below below_v ({bv:g})")
        if bp is not None and cp is not None and cp < bp:
            raise t.fail("clear_pct", f"must not be below below_pct ({bp:g})")
        for_s, clear_for_s = timing(t)
        return BatteryParams(for_s, clear_for_s, bv, bp, cv, cp)

    def verdict(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, Verdict | None]:
        p = rule.params
        assert isinstance(p, BatteryParams)
        checks = []
        for name, below, clear in (
            ("battery_v", p.below_v, p.clear_v),
            ("battery_pct", p.below_pct, p.clear_pct),
        ):
            x = measurement_value(reading, name)
            if below is not None and clear is not None and x is not None:
                checks.append((name, x, below, x < below, x >= clear))
        if not checks:
            return st, None
        bad = [c for c in checks if c[3]]
        name, x, below, _, _ = (bad or checks)[0]
        return st, Verdict(
            bool(bad),
            all(c[4] for c in checks),
            name,
            x,
            f"battery low: {name} {num(x)} below {num(below)}",
        )
