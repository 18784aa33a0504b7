"""The alert lifecycle every kind shares: pending -> raised (once) -> clearing -> cleared. Pure.

A rule never raises twice without a clear: `active` gates both transitions. Alert ids are
`{rule}:{dev_eui}:{episode_ms}:{state}`, stable across restarts because `episode_ms` is persisted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway_agent.model import Alert
from gateway_agent.rules.rule import Rule
from gateway_agent.rules.state import RuleState


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one observation says: `bad` -> the raise condition holds; `good` -> the clear
    condition holds (both false: inside the hysteresis band, nothing changes)."""

    bad: bool
    good: bool
    measurement: str | None
    value: float | None
    detail: str


def num(x: float | None) -> str:
    return "none" if x is None else f"{x:.6g}"


def alert_id(rule: str, dev_eui: bytes, episode_ms: int, state: str) -> str:
    return f"{rule}:{dev_eui.hex()}:{episode_ms}:{state}"


def raise_alert(rule: Rule, st: RuleState, dev_eui: bytes, now: float) -> tuple[RuleState, Alert]:
    ep = int(round(now * 1000))
    st = replace(st, active=True, episode_ms=ep, bad_since=None, good_since=None)
    return st, Alert(
        id=alert_id(rule.name, dev_eui, ep, "raised"),
        dev_eui=dev_eui,
        rule=rule.name,
        state="raised",
        severity=rule.severity,
        measurement=st.measurement,
        value=st.value,
        time=now,
        message=st.detail,
    )


def clear_alert(
    rule: Rule, st: RuleState, dev_eui: bytes, now: float, message: str | None = None
) -> tuple[RuleState, Alert]:
    ep = st.episode_ms if st.episode_ms is not None else int(round(now * 1000))
    st = replace(st, active=False, episode_ms=ep, bad_since=None, good_since=None)
    return st, Alert(
        id=alert_id(rule.name, dev_eui, ep, "cleared"),
        dev_eui=dev_eui,
        rule=rule.name,
        state="cleared",
        severity=rule.severity,
        measurement=st.measurement,
        value=st.value,
        time=now,
        message=message or _cleared(st),
    )


def _cleared(st: RuleState) -> str:
    if st.measurement is None:
        return "cleared"
    return f"cleared: {st.measurement} now {num(st.value)}"


def _since(prev: float | None, now: float) -> float:
    # A clock stepped backwards restarts the timer rather than stretching it.
    return now if prev is None or prev > now else prev


def step(
    rule: Rule,
    st: RuleState,
    dev_eui: bytes,
    now: float,
    v: Verdict | None,
    for_s: float,
    clear_for_s: float,
) -> tuple[RuleState, list[Alert]]:
    """Apply one observation. `v` None means "no information" (measurement absent): timers run on."""
    if v is None:
        return st, []
    st = replace(st, measurement=v.measurement, value=v.value, detail=v.detail)
    if not st.active:
        if not v.bad:
            return replace(st, bad_since=None), []
        st = replace(st, bad_since=_since(st.bad_since, now))
        assert st.bad_since is not None
        if now - st.bad_since >= for_s:
            st, a = raise_alert(rule, st, dev_eui, now)
            return st, [a]
        return st, []
    if not v.good:
        return replace(st, good_since=None), []
    st = replace(st, good_since=_since(st.good_since, now))
    assert st.good_since is not None
    if now - st.good_since >= clear_for_s:
        st, a = clear_alert(rule, st, dev_eui, now)
        return st, [a]
    return st, []


def timers(
    rule: Rule, st: RuleState, dev_eui: bytes, now: float, for_s: float, clear_for_s: float
) -> tuple[RuleState, list[Alert]]:
    """The tick path: a `for`/`clear_for` window that elapses without a new observation. The last
    observation is assumed to still hold."""
    if not st.active and st.bad_since is not None and now - st.bad_since >= for_s:
        st, a = raise_alert(rule, st, dev_eui, now)
        return st, [a]
    if st.active and st.good_since is not None and now - st.good_since >= clear_for_s:
        st, a = clear_alert(rule, st, dev_eui, now)
        return st, [a]
    return st, []


def due(st: RuleState, for_s: float, clear_for_s: float) -> float | None:
    if not st.active and st.bad_since is not None:
        return st.bad_since + for_s
    if st.active and st.good_since is not None:
        return st.good_since + clear_for_s
    return None
