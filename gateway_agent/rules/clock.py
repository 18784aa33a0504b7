"""Wall-clock steps and rule state (issue #16 item 8): rules measure elapsed time as the monotonic
clock does. `ClockWatch` finds a step in the (wall, monotonic) pairs the shell reads; `rebase`
moves every time a state holds by the step, so `now - since` stays the time that really passed.
Pure: time is passed in.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway_agent.rules.kind import KINDS
from gateway_agent.rules.rule import Rule
from gateway_agent.rules.state import RuleState

# Wall minus monotonic moves only when the wall clock is stepped (NTP slews at most 0.5 ms/s;
# reading the two clocks a scheduler slice apart costs milliseconds): past this, it was a step.
STEP_S = 2.0

_FIELDS = ("bad_since", "good_since", "last_seen", "watch_since")  # RuleState's own times


class ClockWatch:
    """The wall clock's offset from the monotonic clock, and where it last stepped."""

    __slots__ = ("offset", "last_mono", "step_mono")

    def __init__(self) -> None:
        self.offset: float | None = None  # wall - monotonic, as last seen
        self.last_mono = float("-inf")
        self.step_mono: float | None = None  # monotonic time the last step was seen at

    def observe(self, wall: float, mono: float) -> float | None:
        """A pair read now. Returns the step (seconds, positive when the clock went forward), 0.0
        for none, None for the first pair (there was nothing to compare it with)."""
        if mono < self.last_mono:
            return 0.0  # an older pair: it says nothing about now
        prev, self.offset, self.last_mono = self.offset, wall - mono, mono
        if prev is None:
            return None
        step = self.offset - prev
        if abs(step) <= STEP_S:
            return 0.0
        self.step_mono = mono
        return step

    def same_frame(self, wall: float, mono: float) -> bool:
        """Whether a pair stamped at some time (a reading's reception) agrees with the clock as
        last seen: then its wall time needs no mapping and says nothing new."""
        return self.offset is not None and abs(wall - mono - self.offset) <= STEP_S

    def current(self, wall: float, mono: float) -> float:
        """A time stamped as (wall, mono), in the wall clock's current frame: a stamp taken before
        the last step is moved by it (the reading is kept as stamped; only the rules re-time it)."""
        stepped = self.step_mono is not None and mono < self.step_mono
        if stepped and self.offset is not None and not self.same_frame(wall, mono):
            return mono + self.offset
        return wall


def rebase(rule: Rule, st: RuleState, delta: float) -> RuleState:
    """`st` with every time it holds moved by `delta` seconds (a clock step), so that timers
    (silence, stale, `for`, rate windows) measure the time that passed, not the step. The
    episode (alert ids) stays: it names an alert already sent."""
    changes: dict[str, Any] = {
        k: getattr(st, k) + delta for k in _FIELDS if getattr(st, k) is not None
    }
    kind = KINDS.get(rule.kind)
    data: dict[str, Any] = {}
    for k in getattr(kind, "time_keys", ()):
        v = st.data.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            data[k] = v + delta
    for k in getattr(kind, "series_keys", ()):
        v = st.data.get(k)
        if isinstance(v, tuple | list):
            data[k] = tuple((s[0] + delta, *s[1:]) for s in v)
    if data:
        changes["data"] = {**st.data, **data}
    return replace(st, **changes) if changes else st


def latest(rule: Rule, st: RuleState) -> float | None:
    """The latest time `st` holds (None: none): a clock now behind it by more than a step was
    stepped back while the agent was down (a Pi without a real-time clock boots in 1970)."""
    times = [getattr(st, k) for k in _FIELDS if getattr(st, k) is not None]
    if st.episode_ms is not None:
        times.append(st.episode_ms / 1000)
    kind = KINDS.get(rule.kind)
    for k in getattr(kind, "time_keys", ()):
        v = st.data.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            times.append(float(v))
    for k in getattr(kind, "series_keys", ()):
        v = st.data.get(k)
        if isinstance(v, tuple | list):
            times.extend(float(s[0]) for s in v)
    return max(times) if times else None
