"""`deviation`: hour-of-week baselines. Three weeks of a resident's routine, then a missed morning."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import RuleState, evaluate, load_rules, state_to_json, tick
from gateway_agent.rules.localtime import hour_of_week, utc_offset_s

EUI = bytes.fromhex("70b3d57ed00000b1")
DEV = Device(dev_eui=EUI, name="flat 3 door", device_class="other", tags=("telecare",))
MON = datetime(2026, 2, 2, tzinfo=UTC).timestamp()  # a Monday, GMT
DAY = 86400.0
RULE = load_rules(
    [
        {
            "name": "routine",
            "kind": "deviation",
            "activity": True,
            "severity": "critical",
            "select": {"tags_any": ["telecare"]},
        }
    ]
)[0]


def uplink_times(day: int, rnd: random.Random, morning: bool = True) -> list[float]:
    """A door/PIR sensor: hourly heartbeat, event uplinks (max one per 10 min) when active.
    Usual day: up at 7, busy until 9:30, light activity 10-21, quiet at night."""
    t0 = MON + day * DAY
    out = [t0 + h * 3600 + 1500 + rnd.uniform(-60, 60) for h in range(24)]  # heartbeats
    for h in range(24):
        if 7 <= h <= 9:
            p, n = (0.85, 6) if morning else (0.0, 0)
        elif 10 <= h <= 21:
            p, n = 0.35, 3
        else:
            p, n = 0.0, 0
        for k in range(n):
            if rnd.random() < p:
                out.append(t0 + h * 3600 + k * 600 + rnd.uniform(0, 500))
    return sorted(out)


def run_days(
    days: list[tuple[int, bool]], seed: int, state: RuleState | None = None
) -> tuple[RuleState | None, list[Alert]]:
    """Uplinks plus a tick every 5 minutes (the daemon ticks every few seconds)."""
    rnd = random.Random(seed)
    alerts: list[Alert] = []
    for day, morning in days:
        events = [(t, "up") for t in uplink_times(day, rnd, morning)]
        events += [(MON + day * DAY + k * 300.0, "tick") for k in range(288)]
        for n, (t, what) in enumerate(sorted(events)):
            if what == "up":
                r = Reading(
                    id=f"g:{n}",
                    dev_eui=EUI,
                    dev_addr=b"\0\0\0\2",
                    fcnt=n,
                    f_port=1,
                    payload=b"",
                    time=t,
                    measurements={"battery_v": 3.6},
                )
                state, a = evaluate(RULE, state, r, t)
            else:
                state, a = tick(RULE, state, DEV, t)
            alerts += a
    return state, alerts


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_missed_morning_raises_exactly_once_and_normal_day_does_not(seed: int) -> None:
    history = [(d, True) for d in range(21)]
    state, alerts = run_days(history, seed)
    assert alerts == []  # learning: no verdicts before three weeks of history
    saved = state
    _, normal = run_days([(21, True), (22, True)], seed + 100, saved)
    assert normal == []
    _, missed = run_days([(21, False), (22, True)], seed + 100, saved)
    raised = [a for a in missed if a.state == "raised"]
    assert len(raised) == 1
    a = raised[0]
    hour = (a.time - MON - 21 * DAY) / 3600
    assert 8 <= hour <= 10.5, hour  # noticed within the morning routine's window
    assert a.severity == "critical" and a.measurement == "uplinks" and "usual" in a.message
    assert [x.state for x in missed] == ["raised", "cleared"]
    assert missed[1].id == a.id.replace(":raised", ":cleared")


def test_state_is_bounded_by_weeks_kept() -> None:
    state, _ = run_days([(d, True) for d in range(70)], seed=9)  # ten weeks
    assert state is not None
    hist = state.data["hist"]
    assert len(hist) == 168 and max(len(b) for b in hist) == 8
    assert len(state_to_json(state)) < 16_000


def test_agent_downtime_is_not_a_quiet_day() -> None:
    state, _ = run_days([(d, True) for d in range(21)], seed=4)
    # The agent is down from 06:00 to 11:00 on day 21: no ticks and no uplinks seen.
    rnd = random.Random(8)
    alerts: list[Alert] = []
    for t in uplink_times(21, rnd):
        if 6 * 3600 <= t - MON - 21 * DAY < 11 * 3600:
            continue
        r = Reading(
            id="x",
            dev_eui=EUI,
            dev_addr=b"\0\0\0\2",
            fcnt=1,
            f_port=1,
            payload=b"",
            time=t,
            measurements={},
        )
        state, a = evaluate(RULE, state, r, t)
        alerts += a
    assert alerts == []


def test_sensor_drift_on_a_measurement() -> None:
    r = load_rules(
        [
            {
                "name": "drift",
                "kind": "deviation",
                "measurement": "co2_ppm",
                "direction": "high",
                "window": "3h",
                "min_spread": 25,
            }
        ]
    )[0]
    rnd = random.Random(3)
    state: RuleState | None = None
    alerts: list[Alert] = []
    for k in range(0, 28 * 96):  # four weeks of readings every 15 min
        t = MON + k * 900
        h = (t % DAY) / 3600
        occupied = 9 <= h < 15 and (t - MON) // DAY % 7 < 5
        drift = 0.0 if k < 25 * 96 else 150.0  # the sensor starts reading high on day 25
        v = (900 if occupied else 430) + rnd.gauss(0, 20) + drift
        rd = Reading(
            id="x",
            dev_eui=EUI,
            dev_addr=b"\0\0\0\2",
            fcnt=k,
            f_port=1,
            payload=b"",
            time=t,
            measurements={"co2_ppm": v},
        )
        state, a = evaluate(r, state, rd, t)
        alerts += a
    assert [a.state for a in alerts] == ["raised"]
    assert MON + 25 * DAY < alerts[0].time < MON + 25 * DAY + 4 * 3600


def test_london_time_buckets() -> None:
    summer = datetime(2026, 7, 6, 6, 30, tzinfo=UTC).timestamp()  # Monday 07:30 BST
    winter = datetime(2026, 1, 5, 7, 30, tzinfo=UTC).timestamp()  # Monday 07:30 GMT
    assert hour_of_week(summer, "Europe/London") == hour_of_week(winter, "Europe/London") == 7
    assert hour_of_week(summer, "UTC") == 6
    start = datetime(2026, 3, 29, 1, 0, tzinfo=UTC).timestamp()  # BST starts
    end = datetime(2026, 10, 25, 1, 0, tzinfo=UTC).timestamp()  # BST ends
    assert utc_offset_s(start - 1, "Europe/London") == 0
    assert utc_offset_s(start, "Europe/London") == 3600
    assert utc_offset_s(end - 1, "Europe/London") == 3600
    assert utc_offset_s(end, "Europe/London") == 0
