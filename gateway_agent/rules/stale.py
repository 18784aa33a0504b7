"""`stale`: an outlet not used (flushed) for `for`, inferred from its pipe temperature. Pure.

Use shows as an excursion of at least `delta` away from the pipe's resting level (hot use
upwards, cold use downwards). The resting level follows non-excursion readings with time
constant `tau`, so slow ambient drift (heating, seasons) is not mistaken for use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import lifecycle
from gateway_agent.rules.duration import format_duration
from gateway_agent.rules.kind import kind
from gateway_agent.rules.levels import measurement_value
from gateway_agent.rules.lifecycle import num
from gateway_agent.rules.rule import Params, Rule
from gateway_agent.rules.state import RuleState
from gateway_agent.rules.table import Table


@dataclass(frozen=True, slots=True)
class StaleParams(Params):
    measurement: str = "temperature_c"
    delta: float = 6.0
    direction: str = "either"  # hot | cold | either
    tau_s: float = 6 * 3600.0


@kind("stale")
class Stale:
    time_keys = ("rest_at", "flushed")  # epoch times in `data`, moved by a clock step (clock.py)

    def parse(self, t: Table) -> StaleParams:
        for_s = t.duration("for", 7 * 86400.0)
        m = t.string("measurement", "temperature_c")
        delta = t.number("delta", 6.0, lo=0.1)
        direction = t.choice("direction", "either", ("hot", "cold", "either"))
        tau_s = t.duration("tau", 6 * 3600.0)
        assert for_s is not None and m is not None and delta is not None and tau_s is not None
        if for_s <= 0:
            raise t.fail("for", "must be longer than 0s")
        return StaleParams(for_s, 0.0, m, delta, direction, max(tau_s, 1.0))

    def evaluate(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, list[Alert]]:
        p = rule.params
        assert isinstance(p, StaleParams)
        x = measurement_value(reading, p.measurement)
        if x is None:
            return st, []
        rest = st.data.get("rest")
        at = st.data.get("rest_at")
        if not isinstance(rest, float | int) or not isinstance(at, float | int):
            st = replace(st, watch_since=now, measurement=p.measurement, value=x).with_data(
                rest=x, rest_at=now, flushed=now
            )
            return st, []
        up = x - rest >= p.delta and p.direction in ("hot", "either")
        down = rest - x >= p.delta and p.direction in ("cold", "either")
        st = replace(st, measurement=p.measurement, value=x)
        if up or down:
            st = st.with_data(flushed=now, peak=x)
            if st.active:
                msg = f"outlet used: {p.measurement} {num(x)} vs resting {num(rest)}"
                st, a = lifecycle.clear_alert(rule, st, reading.dev_eui, now, msg)
                return st, [a]
            return st, []
        dt = max(0.0, now - float(at))
        k = 1.0 - math.exp(-dt / p.tau_s)
        st = st.with_data(rest=round(rest + (x - rest) * k, 4), rest_at=now)
        return self._check(rule, st, reading.dev_eui, now)

    def tick(
        self, rule: Rule, st: RuleState, device: Device, now: float
    ) -> tuple[RuleState, list[Alert]]:
        return self._check(rule, st, device.dev_eui, now)

    def next_due(self, rule: Rule, st: RuleState) -> float | None:
        f = st.data.get("flushed")
        if st.active or not isinstance(f, float | int):
            return None
        return float(f) + rule.params.for_s

    def _check(
        self, rule: Rule, st: RuleState, dev_eui: bytes, now: float
    ) -> tuple[RuleState, list[Alert]]:
        due = self.next_due(rule, st)
        if due is None or now < due:
            return st, []
        f = st.data.get("flushed")
        assert isinstance(f, float | int)
        st = replace(
            st,
            detail=f"no use (flush) seen for {format_duration(round(now - f))}"
            f" (limit {format_duration(rule.params.for_s)})",
        )
        st, a = lifecycle.raise_alert(rule, st, dev_eui, now)
        return st, [a]
