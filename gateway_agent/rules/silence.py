"""`silence`: no uplink for `for` -> offline alert, raised by `tick`; the next uplink clears it. Pure.

Before the first uplink the clock runs from the first evaluate/tick (`watch_since`), so a device
that never speaks is reported too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import lifecycle
from gateway_agent.rules.duration import format_duration
from gateway_agent.rules.kind import kind
from gateway_agent.rules.rule import Params, Rule
from gateway_agent.rules.state import RuleState
from gateway_agent.rules.table import Table


@dataclass(frozen=True, slots=True)
class SilenceParams(Params):
    pass


@kind("silence")
class Silence:
    def parse(self, t: Table) -> SilenceParams:
        for_s = t.duration("for", required=True)
        assert for_s is not None
        if for_s <= 0:
            raise t.fail("for", "must be longer than 0s")
        return SilenceParams(for_s=for_s)

    def evaluate(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, list[Alert]]:
        silent = now - self._start(st) if st.watch_since is not None else 0.0
        st = replace(st, last_seen=now, watch_since=st.watch_since or now)
        if not st.active:
            return st, []
        st = replace(st, measurement=None, value=round(silent, 3))
        msg = f"uplink again after {format_duration(round(silent))} of silence"
        st, a = lifecycle.clear_alert(rule, st, reading.dev_eui, now, msg)
        return st, [a]

    def tick(
        self, rule: Rule, st: RuleState, device: Device, now: float
    ) -> tuple[RuleState, list[Alert]]:
        if st.watch_since is None:
            return replace(st, watch_since=now), []
        start = self._start(st)
        if st.active or now - start < rule.params.for_s:
            return st, []
        silent = now - start
        st = replace(
            st,
            measurement=None,
            value=round(silent, 3),
            detail=f"no uplink for {format_duration(round(silent))}"
            f" (limit {format_duration(rule.params.for_s)})",
        )
        st, a = lifecycle.raise_alert(rule, st, device.dev_eui, now)
        return st, [a]

    def next_due(self, rule: Rule, st: RuleState) -> float | None:
        if st.active or st.watch_since is None:
            return None
        return self._start(st) + rule.params.for_s

    @staticmethod
    def _start(st: RuleState) -> float:
        if st.last_seen is not None:
            return st.last_seen
        assert st.watch_since is not None
        return st.watch_since
