"""Rule kinds, alert lifecycle, restart in the middle of `for`, silence via tick, state JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.errors import BadInput
from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import (
    Rule,
    RuleState,
    evaluate,
    load_rules,
    next_due,
    state_from_json,
    state_to_json,
    tick,
)

EUI = bytes.fromhex("70b3d57ed0000001")
DEV = Device(dev_eui=EUI, name="P7", device_class="co2")
T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC


def reading(t: float, fcnt: int = 0, **m: float) -> Reading:
    return Reading(
        id=f"gw:{EUI.hex()}:{fcnt}",
        dev_eui=EUI,
        dev_addr=b"\x26\x01\x1b\xda",
        fcnt=fcnt,
        f_port=85,
        payload=b"",
        time=t,
        measurements=m,
    )


def rule(**table: Any) -> Rule:
    return load_rules([{"name": "r", **table}])[0]


class Run:
    """Feeds readings and ticks to one rule, collecting alerts; optional JSON round trip."""

    def __init__(self, r: Rule, roundtrip: bool = False) -> None:
        self.rule, self.state, self.alerts, self.roundtrip = r, None, [], roundtrip
        self.n = 0

    def _keep(self, s: RuleState, alerts: list[Alert]) -> list[Alert]:
        self.state = state_from_json(state_to_json(s)) if self.roundtrip else s
        self.alerts += alerts
        return alerts

    def read(self, t: float, **m: float) -> list[Alert]:
        self.n += 1
        return self._keep(*evaluate(self.rule, self.state, reading(t, self.n, **m), t))

    def tick(self, t: float) -> list[Alert]:
        return self._keep(*tick(self.rule, self.state, DEV, t))

    def states(self) -> list[str]:
        return [a.state for a in self.alerts]


def test_threshold_for_raises_once_then_clears_with_hysteresis() -> None:
    run = Run(
        rule(
            kind="threshold",
            measurement="co2_ppm",
            above=1500,
            clear=1000,
            **{"for": "10m", "clear_for": "0s"},
        )
    )
    assert run.read(T0, co2_ppm=1600) == []
    assert run.read(T0 + 300, co2_ppm=1700) == []
    [a] = run.read(T0 + 600, co2_ppm=1650)
    assert (a.state, a.severity, a.measurement, a.value, a.time) == (
        "raised",
        "warning",
        "co2_ppm",
        1650.0,
        T0 + 600,
    )
    assert a.id == f"r:{EUI.hex()}:{int((T0 + 600) * 1000)}:raised"
    for i, v in enumerate([1400, 1550, 1200, 1600, 1001]):  # wanders, never below clear
        assert run.read(T0 + 900 + 300 * i, co2_ppm=v) == []
    [c] = run.read(T0 + 3000, co2_ppm=990)
    assert c.state == "cleared" and c.id == a.id.replace(":raised", ":cleared")


def test_threshold_interrupted_for_restarts_the_timer() -> None:
    run = Run(rule(kind="threshold", measurement="co2_ppm", above=1500, **{"for": "10m"}))
    run.read(T0, co2_ppm=1600)
    run.read(T0 + 500, co2_ppm=1400)  # one good reading resets the window
    run.read(T0 + 700, co2_ppm=1600)
    assert run.read(T0 + 1200, co2_ppm=1600) == []
    assert run.read(T0 + 1300, co2_ppm=1600)[0].state == "raised"


def test_below_is_strict_and_above_is_inclusive() -> None:
    lo = Run(rule(kind="threshold", measurement="temperature_c", below=50))
    assert lo.read(T0, temperature_c=50.0) == []
    assert lo.read(T0 + 1, temperature_c=49.9)[0].state == "raised"
    hi = Run(rule(kind="threshold", measurement="temperature_c", above=20))
    assert hi.read(T0, temperature_c=20.0)[0].state == "raised"


def test_absent_or_non_finite_measurement_changes_nothing() -> None:
    run = Run(rule(kind="threshold", measurement="co2_ppm", above=1500))
    run.read(T0, humidity_pct=40.0)
    run.read(T0 + 1, co2_ppm=float("nan"))
    assert run.alerts == [] and run.state == RuleState()


def test_for_elapses_on_tick_without_new_reading() -> None:
    run = Run(rule(kind="threshold", measurement="co2_ppm", above=1500, **{"for": "10m"}))
    run.read(T0, co2_ppm=1800)
    assert next_due(run.rule, run.state) == T0 + 600
    assert run.tick(T0 + 598) == []
    [a] = run.tick(T0 + 600)
    assert a.state == "raised" and a.time == T0 + 600
    assert run.tick(T0 + 602) == [] and next_due(run.rule, run.state) is None


@pytest.mark.parametrize("with_ticks", [False, True])
def test_restart_in_the_middle_of_for_fires_once_at_the_right_time(with_ticks: bool) -> None:
    r = rule(kind="threshold", measurement="co2_ppm", above=1500, clear=1000, **{"for": "20m"})
    plan = [(T0 + 60 * i, 1550.0 + (i % 3) * 20) for i in range(0, 41, 5)]  # every 5 min
    ref = Run(r)
    for t, v in plan:
        ref.read(t, co2_ppm=v)
    assert ref.states() == ["raised"] and ref.alerts[0].time == T0 + 1200
    # Same data; the agent restarts halfway through the 20 minutes (state via JSON only).
    first = Run(r)
    for t, v in plan[:3]:
        first.read(t, co2_ppm=v)
    assert first.alerts == []
    saved = state_to_json(first.state)
    second = Run(r)
    second.state = state_from_json(json.loads(json.dumps(saved)))
    if with_ticks:  # the daemon ticks every 2 s after the restart, before the next reading
        for k in range(int(T0 + 600), int(T0 + 1230), 2):
            second.tick(float(k))
        assert second.states() == ["raised"] and second.alerts[0].time == T0 + 1200
    for t, v in plan[3:]:
        second.read(t, co2_ppm=v)
    assert second.states() == ["raised"]
    assert second.alerts[0].id == ref.alerts[0].id


def test_silence_raised_by_tick_on_time_and_cleared_by_uplink() -> None:
    run = Run(rule(kind="silence", severity="critical", **{"for": "1h"}))
    assert run.tick(T0) == []  # starts watching before any uplink
    assert run.read(T0 + 100) == []
    assert next_due(run.rule, run.state) == T0 + 3700
    fired = [t for k in range(0, 7200, 2) for t in [T0 + 100 + k] if run.tick(t)]
    assert fired == [T0 + 3700]
    [a] = run.alerts
    assert (a.state, a.severity, a.value) == ("raised", "critical", 3600.0)
    [c] = run.read(T0 + 8000)
    assert c.state == "cleared" and c.id.endswith(f"{int((T0 + 3700) * 1000)}:cleared")


def test_silence_of_a_device_that_never_speaks() -> None:
    run = Run(rule(kind="silence", **{"for": "30m"}))
    run.tick(T0)
    assert run.tick(T0 + 1799) == []
    assert run.tick(T0 + 1800)[0].state == "raised"


def test_tick_returns_the_same_state_when_nothing_changes() -> None:
    r = rule(kind="silence", **{"for": "1h"})
    s, _ = tick(r, None, DEV, T0)
    s2, alerts = tick(r, s, DEV, T0 + 10)
    assert s2 is s and alerts == []


def test_band_outside_with_margin() -> None:
    run = Run(
        rule(kind="band", measurement="humidity_pct", low=30, high=60, margin=5, **{"for": "0s"})
    )
    assert run.read(T0, humidity_pct=45.0) == []
    assert run.read(T0 + 1, humidity_pct=62.0)[0].state == "raised"
    assert run.read(T0 + 2, humidity_pct=58.0) == []  # back inside, but within the margin
    assert run.read(T0 + 3, humidity_pct=54.0)[0].state == "cleared"


def test_band_inside_for_legionella_growth_range() -> None:
    run = Run(
        rule(
            kind="band",
            measurement="temperature_c",
            low=20,
            high=45,
            inside=True,
            margin=1,
            **{"for": "2h", "clear_for": "0s"},
        )
    )
    run.read(T0, temperature_c=30.0)
    assert run.read(T0 + 3600, temperature_c=31.0) == []
    assert run.read(T0 + 7200, temperature_c=32.0)[0].state == "raised"
    assert run.read(T0 + 7300, temperature_c=45.5) == []
    assert run.read(T0 + 7400, temperature_c=50.0)[0].state == "cleared"


def test_rate_rise_per_window_and_sparse_anchor() -> None:
    run = Run(rule(kind="rate", measurement="level_mm", rise=100, per="15m"))
    for i, v in enumerate([300, 310, 330, 360]):
        assert run.read(T0 + 300 * i, level_mm=float(v)) == []
    [a] = run.read(T0 + 1200, level_mm=440.0)  # 440 - 310 (15 min ago) = 130
    assert a.state == "raised" and "rose 130" in a.message
    assert run.read(T0 + 1500, level_mm=470.0) == []
    for i in range(1, 5):
        run.read(T0 + 1500 + 300 * i, level_mm=470.0)
    assert run.states() == ["raised", "cleared"]
    sparse = Run(rule(kind="rate", measurement="level_mm", rise=100, per="15m"))
    sparse.read(T0, level_mm=300.0)
    assert sparse.read(T0 + 1800, level_mm=450.0) == []  # 150 in 30 min = 75 per 15 min
    assert sparse.read(T0 + 3000, level_mm=600.0)[0].state == "raised"  # 150 in 20 min


def test_rate_state_is_bounded() -> None:
    run = Run(rule(kind="rate", measurement="level_mm", fall=50, per="1h"))
    for i in range(2000):
        run.read(T0 + 5 * i, level_mm=float(i % 7))
    assert len(run.state.data["samples"]) <= 64


def test_battery_either_measurement() -> None:
    run = Run(rule(kind="battery", below_v=3.3, below_pct=20))
    assert run.read(T0, battery_v=3.5, battery_pct=60.0) == []
    [a] = run.read(T0 + 1, battery_pct=15.0)
    assert (a.measurement, a.value) == ("battery_pct", 15.0)
    assert run.read(T0 + 2, battery_pct=22.0) == []  # below clear (25)
    assert run.read(T0 + 3, battery_pct=30.0, battery_v=3.35) == []  # volts below clear 3.4
    assert run.read(T0 + 4, battery_pct=30.0, battery_v=3.45)[0].state == "cleared"


def test_stale_flush_detection() -> None:
    run = Run(rule(kind="stale", **{"for": "7d"}))
    day = 86400.0
    run.read(T0, temperature_c=21.0)
    run.read(T0 + 0.5 * day, temperature_c=45.0)  # hot use
    assert next_due(run.rule, run.state) == T0 + 7.5 * day
    for k in range(1, 8 * 24):
        run.read(T0 + 0.5 * day + k * 3600, temperature_c=21.0 + (k % 24) / 12)
    assert run.states() == ["raised"]
    assert run.alerts[0].time == T0 + 7.5 * day
    [c] = run.read(T0 + 9 * day, temperature_c=12.0)  # cold use counts too
    assert c.state == "cleared"


def test_bad_state_json_is_bad_input() -> None:
    for s in ("", "[]", '{"v": 99}', '{"v": 1, "active": "yes"}', '{"v": 1, "x": 1}'):
        with pytest.raises(BadInput) as e:
            state_from_json(s)
        assert e.value.reason == "rule_state"


# -- properties ----------------------------------------------------------------------------

RULE_TABLES = [
    {"kind": "threshold", "measurement": "x", "above": 50, "clear": 40, "for": "5m"},
    {"kind": "threshold", "measurement": "x", "below": 50, "for": "0s", "clear_for": "1m"},
    {"kind": "band", "measurement": "x", "low": 30, "high": 70, "margin": 3, "for": "2m"},
    {"kind": "rate", "measurement": "x", "rise": 20, "per": "10m"},
    {"kind": "rate", "measurement": "x", "fall": 20, "per": "10m", "for": "1m"},
    {"kind": "stale", "measurement": "x", "for": "1h", "delta": 10},
    {"kind": "silence", "for": "10m"},
    {"kind": "deviation", "measurement": "x", "min_weeks": 1, "window": "1h", "profile": "day"},
]

steps = st.lists(
    st.tuples(st.booleans(), st.floats(0, 1800), st.one_of(st.none(), st.floats(-10, 110))),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(idx=st.integers(0, len(RULE_TABLES) - 1), seq=steps)
def test_never_raises_twice_without_clear_and_state_round_trips(
    idx: int, seq: list[tuple[bool, float, float | None]]
) -> None:
    r = rule(**RULE_TABLES[idx])
    plain, viajson = Run(r), Run(r, roundtrip=True)
    t = T0
    for is_tick, dt, v in seq:
        t += dt
        for run in (plain, viajson):
            if is_tick:
                run.tick(t)
            elif v is None:
                run.read(t)
            else:
                run.read(t, x=v)
        assert state_from_json(state_to_json(plain.state)) == plain.state
    states = plain.states()
    assert all(s == ("raised" if i % 2 == 0 else "cleared") for i, s in enumerate(states))
    ids = [a.id for a in plain.alerts]
    assert len(set(ids)) == len(ids)
    assert ids == [a.id for a in viajson.alerts]  # a restart at every step changes nothing
    for raised, cleared in zip(plain.alerts[::2], plain.alerts[1::2], strict=False):
        assert cleared.id == raised.id.replace(":raised", ":cleared")
        assert cleared.time >= raised.time
