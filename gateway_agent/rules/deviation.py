"""`deviation`: a measurement or the uplink activity off its usual hour-of-week pattern. Pure.

Each closed hour gives a value (uplink count, or mean of the measurement); the aggregate over
the last `window` hours is compared with the median and MAD of the same local hour in up to
`weeks` past weeks (168 buckets x `weeks` numbers: bounded). No verdict until a bucket has
`min_weeks` of history. Hours the engine never saw (agent down) are unknown, not zero; activity
needs `tick` so that an hour with no uplink is closed as zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import lifecycle
from gateway_agent.rules.kind import kind
from gateway_agent.rules.levels import measurement_value
from gateway_agent.rules.lifecycle import Verdict, num
from gateway_agent.rules.localtime import ZONES, hour_of_week, label
from gateway_agent.rules.rule import Params, Rule
from gateway_agent.rules.state import RuleState
from gateway_agent.rules.table import Table

MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation
MAX_WEEKS = 12


@dataclass(frozen=True, slots=True)
class DeviationParams(Params):
    measurement: str | None = None  # None: uplink activity (count per hour)
    window_h: int = 3
    direction: str = "both"  # low | high | both
    sensitivity: float = 3.5
    clear_sensitivity: float = 1.5
    min_weeks: int = 3
    weeks: int = 8
    min_spread: float = 1.0
    min_spread_pct: float = 10.0
    profile: str = "week"  # week: 168 buckets; day: 24 (weekdays and weekends alike)
    timezone: str = "Europe/London"

    @property
    def what(self) -> str:
        return self.measurement or "uplinks"


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def robust_z(x: float, history: list[float], p: DeviationParams) -> tuple[float, float]:
    """(z, median): distance from the median in robust standard deviations. The spread is
    floored by `min_spread` and `min_spread_pct` of the median (a few weeks can have a MAD of
    zero) and, for uplink counts, by the Poisson spread sqrt(median)."""
    med = median(history)
    mad = median([abs(h - med) for h in history])
    scale = max(MAD_TO_SD * mad, p.min_spread, abs(med) * p.min_spread_pct / 100)
    if p.measurement is None:
        scale = max(scale, math.sqrt(max(med, 0.0)))
    return (x - med) / scale, med


@kind("deviation")
class Deviation:
    def parse(self, t: Table) -> DeviationParams:
        m = t.string("measurement")
        activity = t.boolean("activity", False)
        if (m is None) == (not activity):
            raise t.fail("measurement", "give either measurement or activity = true")
        window = t.duration("window", 3 * 3600.0)
        assert window is not None
        if window % 3600 or not 3600 <= window <= 24 * 3600:
            raise t.fail("window", "expected whole hours from 1h to 24h")
        direction = t.choice("direction", "low" if activity else "both", ("low", "high", "both"))
        sens = t.number("sensitivity", 3.0 if activity else 3.5, lo=0.5, hi=50.0)
        assert sens is not None
        clear = t.number("clear_sensitivity", min(1.5, sens), lo=0.0, hi=50.0)
        assert clear is not None
        if clear > sens:
            raise t.fail("clear_sensitivity", f"must not exceed sensitivity ({sens:g})")
        min_weeks = t.integer("min_weeks", 3, lo=1, hi=MAX_WEEKS)
        weeks = t.integer("weeks", max(8, min_weeks), lo=1, hi=MAX_WEEKS)
        if weeks < min_weeks:
            raise t.fail("weeks", f"must be at least min_weeks ({min_weeks})")
        spread = t.number("min_spread", 1.0, lo=0.0)
        spread_pct = t.number("min_spread_pct", 10.0, lo=0.0, hi=1000.0)
        assert spread is not None and spread_pct is not None
        if spread <= 0 and spread_pct <= 0:
            raise t.fail("min_spread", "min_spread and min_spread_pct cannot both be 0")
        profile = t.choice("profile", "week", ("week", "day"))
        zone = t.choice("timezone", "Europe/London", ZONES)
        return DeviationParams(
            0.0,
            0.0,
            m,
            int(window // 3600),
            direction,
            sens,
            clear,
            min_weeks,
            weeks,
            spread,
            spread_pct,
            profile,
            zone,
        )

    def evaluate(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, list[Alert]]:
        p = rule.params
        assert isinstance(p, DeviationParams)
        if p.measurement is None:
            x: float | None = 1.0
        else:
            x = measurement_value(reading, p.measurement)
            if x is None:
                return st, []
        st, alerts = self._advance(rule, p, st, reading.dev_eui, now)
        n, total = st.data.get("n", 0), st.data.get("sum", 0.0)
        st = st.with_data(n=n + 1, sum=round(total + x, 6))
        return st, alerts

    def tick(
        self, rule: Rule, st: RuleState, device: Device, now: float
    ) -> tuple[RuleState, list[Alert]]:
        p = rule.params
        assert isinstance(p, DeviationParams)
        return self._advance(rule, p, st, device.dev_eui, now)

    def next_due(self, rule: Rule, st: RuleState) -> float | None:
        h = st.data.get("hour")
        return (h + 1) * 3600.0 if isinstance(h, int) else None

    def _advance(
        self, rule: Rule, p: DeviationParams, st: RuleState, dev_eui: bytes, now: float
    ) -> tuple[RuleState, list[Alert]]:
        """Close every hour before `now`'s hour; open `now`'s hour."""
        hour = math.floor(now / 3600)
        cur = st.data.get("hour")
        recent: tuple[Any, ...] = st.data.get("recent", ())
        if not isinstance(cur, int) or hour < cur:  # first call, or the clock went back
            return st.with_data(hour=hour, partial=True, n=0, sum=0.0, recent=()), []
        if hour == cur:
            return st, []
        alerts: list[Alert] = []
        x_h: float | None = None
        n = st.data.get("n", 0)
        if not st.data.get("partial", False):
            if p.measurement is None:
                x_h = float(n)
            elif n:
                x_h = st.data.get("sum", 0.0) / n
        recent = (*recent, x_h)[-p.window_h :]
        st, alerts = self._judge(rule, p, st, dev_eui, now, cur, recent)
        gap = hour - cur - 1  # hours never seen: the agent was not running
        recent = (*recent, *([None] * min(gap, p.window_h)))[-p.window_h :]
        return st.with_data(
            hour=hour,
            partial=gap > 0,
            n=0,
            sum=0.0,
            recent=recent[-(p.window_h - 1) :] if p.window_h > 1 else (),
        ), alerts

    def _judge(
        self,
        rule: Rule,
        p: DeviationParams,
        st: RuleState,
        dev_eui: bytes,
        now: float,
        closed: int,
        recent: tuple[Any, ...],
    ) -> tuple[RuleState, list[Alert]]:
        known = [float(v) for v in recent if v is not None]
        if p.measurement is None:
            if len(recent) < p.window_h or len(known) < p.window_h:
                return st, []
            x = sum(known)
        else:
            if not known or recent[-1] is None:
                return st, []
            x = sum(known) / len(known)
        buckets = 168 if p.profile == "week" else 24
        b = hour_of_week(closed * 3600.0, p.timezone) % buckets
        hist: list[tuple[float, ...]] = list(st.data.get("hist", ()))
        if len(hist) != buckets:
            hist = [()] * buckets
        past = [float(v) for v in hist[b]]
        alerts: list[Alert] = []
        if len(past) >= p.min_weeks:
            z, med = robust_z(x, past, p)
            if p.direction == "low":
                bad, good = z <= -p.sensitivity, z > -p.clear_sensitivity
            elif p.direction == "high":
                bad, good = z >= p.sensitivity, z < p.clear_sensitivity
            else:
                bad, good = abs(z) >= p.sensitivity, abs(z) < p.clear_sensitivity
            end = label((b + 1) % buckets, buckets)
            agg = "in" if p.measurement is None else "mean over"
            v = Verdict(
                bad,
                good,
                p.what,
                round(x, 6),
                f"{p.what} {num(x)} {agg} the {p.window_h}h to {end} vs usual "
                f"{num(med)} (robust z {z:+.1f}, limit {p.sensitivity:g})",
            )
            st, alerts = lifecycle.step(rule, st, dev_eui, now, v, 0.0, 0.0)
        hist[b] = (*past, round(x, 4))[-p.weeks :]
        return st.with_data(hist=tuple(hist)), alerts
