"""rules/clock.py: finding a wall-clock step in (wall, monotonic) pairs, and moving a rule state
by it (every kind's own times included), pure."""

from __future__ import annotations

from gateway_agent.rules import RuleState
from gateway_agent.rules.clock import STEP_S, ClockWatch, latest, rebase
from gateway_agent.rules.rule import Params, Rule, Selector


def _rule(kind: str) -> Rule:
    return Rule("r", kind, "warning", Selector(), Params())


def test_a_step_is_the_change_of_wall_minus_monotonic() -> None:
    w = ClockWatch()
    assert w.observe(30.0, 10.0) is None, "nothing to compare the first pair with"
    assert w.observe(32.0, 12.0) == 0.0
    assert w.observe(33.0 + STEP_S / 2, 13.0) == 0.0, "slewing, not a step"
    step = w.observe(1_780_000_000.0, 14.0)
    assert step is not None and step > 1.7e9
    assert w.observe(10.0, 1.0) == 0.0, "an older pair says nothing about now"


def test_a_stamp_from_before_the_step_is_moved_into_the_new_frame() -> None:
    w = ClockWatch()
    w.observe(30.0, 10.0)
    w.observe(1_000_030.0, 20.0)  # +1e6 s at mono 20
    assert w.current(35.0, 15.0) == 1_000_025.0, "stamped before the step"
    assert w.current(1_000_031.0, 21.0) == 1_000_031.0, "stamped after it: as it is"


def test_rebase_moves_every_time_a_state_holds_but_not_its_episode() -> None:
    st = RuleState(
        active=True,
        episode_ms=5000,
        bad_since=1.0,
        last_seen=2.0,
        watch_since=3.0,
        data={"rest_at": 4.0, "flushed": 5.0, "rest": 21.5},
    )
    moved = rebase(_rule("stale"), st, 100.0)
    assert (moved.bad_since, moved.last_seen, moved.watch_since) == (101.0, 102.0, 103.0)
    assert moved.good_since is None and moved.episode_ms == 5000
    assert dict(moved.data) == {"rest_at": 104.0, "flushed": 105.0, "rest": 21.5}
    assert latest(_rule("stale"), st) == 5.0
    rate = RuleState(data={"samples": ((10.0, 1.0), (20.0, 2.0))})
    assert rebase(_rule("rate"), rate, -5.0).data["samples"] == ((5.0, 1.0), (15.0, 2.0))
    assert latest(_rule("rate"), rate) == 20.0
    assert rebase(_rule("threshold"), RuleState(), 9.0) == RuleState()
