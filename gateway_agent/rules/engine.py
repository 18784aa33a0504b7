"""The entry points the shell calls: `evaluate` per reading, `tick` on a timer, `next_due`. Pure.

The shell persists the returned state (`state_to_json`) in the same transaction as the reading,
so a restart neither re-fires an alert nor forgets a running `for` timer. Times are wall-clock
epoch seconds; when the wall clock steps, the shell moves every state by the step (`rebase`,
found by `ClockWatch`), so elapsed time is the monotonic clock's.
"""

from __future__ import annotations

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import deviation, levels, rate, silence, stale  # noqa: F401  (registers)
from gateway_agent.rules.clock import STEP_S, ClockWatch, latest, rebase
from gateway_agent.rules.kind import KINDS
from gateway_agent.rules.rule import Rule
from gateway_agent.rules.state import RuleState, state_from_json, state_to_json

__all__ = [
    "STEP_S",
    "ClockWatch",
    "evaluate",
    "latest",
    "next_due",
    "rebase",
    "state_from_json",
    "state_to_json",
    "tick",
]


def evaluate(
    rule: Rule, state: RuleState | None, reading: Reading, now: float
) -> tuple[RuleState, list[Alert]]:
    """Apply one reading of a device the rule selects. `now` is the reading's time (epoch s)."""
    return KINDS[rule.kind].evaluate(rule, state or RuleState(), reading, now)


def tick(
    rule: Rule, state: RuleState | None, device: Device, now: float
) -> tuple[RuleState, list[Alert]]:
    """Advance timers without a reading (silence, `for`/`clear_for` windows, hour closes).

    Returns the same state object when nothing changed, so the shell can skip the write.
    """
    return KINDS[rule.kind].tick(rule, state or RuleState(), device, now)


def next_due(rule: Rule, state: RuleState | None) -> float | None:
    """The earliest time a `tick` could change something (None: only a reading can)."""
    if state is None:
        return None
    return KINDS[rule.kind].next_due(rule, state)
