"""Every preset on realistic noisy data (seeded): raises once, no flapping near the limit, clears."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import Rule, RuleState, evaluate, load_rules, tick

T0 = 1_767_600_000.0  # a winter weekday morning
MIN = 60.0


def device(cls: str, *tags: str) -> Device:
    return Device(dev_eui=bytes.fromhex("70b3d57ed00000a1"), device_class=cls, tags=tags)


def simulate(
    rules: list[Rule], dev: Device, series: Iterator[tuple[float, dict[str, float]]]
) -> dict[str, list[Alert]]:
    """Readings plus a tick every 30 s in between, as the daemon does. Alerts per rule."""
    mine = [r for r in rules if r.selects(dev)]
    states: dict[str, RuleState | None] = {r.name: None for r in mine}
    out: dict[str, list[Alert]] = {r.name: [] for r in mine}
    last = None
    for n, (t, m) in enumerate(series):
        if last is not None:
            k = last + 30
            while k < t:
                for r in mine:
                    states[r.name], a = tick(r, states[r.name], dev, k)
                    out[r.name] += a
                k += 30
        rd = Reading(
            id=f"gw:x:{n}",
            dev_eui=dev.dev_eui,
            dev_addr=b"\0\0\0\1",
            fcnt=n,
            f_port=1,
            payload=b"",
            time=t,
            measurements=m,
        )
        for r in mine:
            states[r.name], a = evaluate(r, states[r.name], rd, t)
            out[r.name] += a
        last = t
    return out


def path(
    points: list[tuple[float, float]],
    step_s: float,
    noise: float,
    seed: int,
    name: str,
    extra: Callable[[float], dict[str, float]] | None = None,
) -> Iterator[tuple[float, dict[str, float]]]:
    """Piecewise-linear course through (minutes, value) points, sampled every step_s, + noise."""
    rnd = random.Random(seed)
    t = 0.0
    end = points[-1][0] * MIN
    while t <= end:
        for (ta, va), (tb, vb) in zip(points, points[1:], strict=False):
            if ta * MIN <= t <= tb * MIN:
                v = va + (vb - va) * (t - ta * MIN) / ((tb - ta) * MIN or 1)
                break
        m = {name: round(v + rnd.gauss(0, noise), 1)}
        if extra:
            m.update(extra(t))
        yield T0 + t, m
        t += step_s


def once(alerts: list[Alert]) -> tuple[Alert, Alert]:
    assert [a.state for a in alerts] == ["raised", "cleared"], [(a.state, a.value) for a in alerts]
    return alerts[0], alerts[1]


def at_min(a: Alert) -> float:
    return (a.time - T0) / MIN


def test_co2_classroom_day() -> None:
    rules = load_rules([{"preset": "co2"}])
    # Lesson: CO2 climbs past 1500, sits around 1500 (+-60) for an hour, peaks above 2000,
    # wanders around 2000, then the windows open.
    course = [
        (0, 600),
        (40, 1700),
        (60, 1520),
        (120, 1500),
        (150, 2200),
        (190, 2150),
        (200, 2000),
        (260, 2000),
        (280, 800),
        (330, 650),
    ]
    alerts = simulate(rules, device("co2"), path(course, 5 * MIN, 40, seed=7, name="co2_ppm"))
    w_up, w_down = once(alerts["co2-warning"])
    c_up, c_down = once(alerts["co2-critical"])
    assert 50 <= at_min(w_up) <= 70  # 20 min after first crossing 1500 (~35 min)
    assert 160 <= at_min(c_up) <= 180
    assert w_up.severity == "warning" and c_up.severity == "critical"
    assert 270 <= at_min(w_down) <= 300 and at_min(c_down) == at_min(w_down)
    assert w_down.value is not None and w_down.value < 1000


def test_co2_preset_does_not_fire_on_brief_peaks() -> None:
    rules = load_rules([{"preset": "co2"}])
    course = [(0, 900), (10, 1700), (20, 900), (40, 900), (50, 1650), (60, 1000)]
    alerts = simulate(rules, device("co2"), path(course, 5 * MIN, 30, seed=3, name="co2_ppm"))
    assert alerts == {"co2-warning": [], "co2-critical": []}


def test_legionella_hot_supply_storage_and_cold() -> None:
    rules = load_rules([{"preset": "legionella"}])
    hot = [(0, 55), (60, 55), (70, 46), (130, 46), (140, 50), (260, 50), (270, 56), (330, 56)]
    a = simulate(
        rules, device("legionella", "hot"), path(hot, 2 * MIN, 0.6, seed=11, name="temperature_c")
    )
    up, down = once(a["legionella-hot"])
    assert 66 <= at_min(up) <= 72 and 266 <= at_min(down) <= 285
    assert set(a) == {"legionella-hot"}
    calor = [(0, 62), (60, 62), (80, 57), (180, 57), (190, 60), (300, 60), (310, 63), (400, 63)]
    a = simulate(
        rules,
        device("legionella", "calorifier"),
        path(calor, 5 * MIN, 0.4, seed=12, name="temperature_c"),
    )
    up, down = once(a["legionella-storage"])
    assert up.severity == "critical" and 70 <= at_min(up) <= 100 and at_min(down) >= 310
    cold = [(0, 14), (60, 14), (70, 23), (130, 23), (140, 20), (260, 20), (270, 13), (330, 13)]
    a = simulate(
        rules, device("legionella", "cold"), path(cold, 2 * MIN, 0.5, seed=13, name="temperature_c")
    )
    up, down = once(a["legionella-cold"])
    assert 64 <= at_min(up) <= 72 and 262 <= at_min(down) <= 275


def test_legionella_outlet_flush_inferred_from_temperature() -> None:
    rules = load_rules([{"preset": "legionella"}])
    rnd = random.Random(21)
    day = 86400.0
    flush_days = {0, 1, 2, 3, 4}  # used daily, then left alone for ten days, then flushed
    flushes = [d * day + 10 * 3600 for d in flush_days] + [15 * day + 9 * 3600]

    def series() -> Iterator[tuple[float, dict[str, float]]]:
        t = 0.0
        while t < 16 * day:
            hour = (t % day) / 3600
            ambient = 20 + 1.5 * ((hour - 6) / 12 if 6 <= hour <= 18 else 0)  # heating
            used = any(0 <= t - f < 1200 for f in flushes)
            v = 47.0 if used else ambient
            yield T0 + t, {"temperature_c": round(v + rnd.gauss(0, 0.3), 1)}
            t += 10 * MIN

    a = simulate(rules, device("legionella", "outlet"), series())
    up, down = once(a["legionella-flush"])
    last_use = T0 + 4 * day + 10 * 3600 + 600  # the last reading taken during use
    assert last_use + 7 * day <= up.time <= last_use + 7 * day + 60  # by tick, on time
    assert down.time >= T0 + 15 * day + 9 * 3600


def test_bins_fill_overflow_and_fire() -> None:
    rules = load_rules([{"preset": "bins"}])
    rnd = random.Random(5)

    def temp(t: float) -> dict[str, float]:
        base = 12.0 + rnd.gauss(0, 0.5)
        fire = 0.0
        if 40 * 60 * MIN <= t < 42 * 60 * MIN:  # smouldering bin: +30 C within 20 min
            fire = min(30.0, (t - 40 * 60 * MIN) / (20 * MIN) * 30)
        elif 42 * 60 * MIN <= t < 44 * 60 * MIN:
            fire = 30 - (t - 42 * 60 * MIN) / (120 * MIN) * 30
        return {"temperature_c": round(base + fire, 1)}

    h = 60.0  # minutes per hour
    course = [
        (0, 10),
        (30 * h, 79),
        (36 * h, 81),
        (48 * h, 80),
        (50 * h, 97),
        (56 * h, 95),
        (58 * h, 95),
        (58.2 * h, 3),
        (62 * h, 5),
    ]
    a = simulate(
        rules, device("bin"), path(course, 20 * MIN, 3.0, seed=9, name="fill_pct", extra=temp)
    )
    due_up, due_down = once(a["bins-due"])
    over_up, over_down = once(a["bins-overflow"])
    fire_up, fire_down = once(a["bins-fire"])
    assert due_up.severity == "info" and 28 * h <= at_min(due_up) <= 40 * h
    assert over_up.severity == "warning" and 48 * h <= at_min(over_up) <= 52 * h
    assert at_min(due_down) >= 58 * h and at_min(over_down) >= 58 * h
    assert fire_up.severity == "critical" and 40 * h <= at_min(fire_up) <= 40 * h + 25
    assert at_min(fire_down) > at_min(fire_up)
    assert a["bins-hot"] == []  # 42 C is hot for a bin, not the 70 C limit


def test_gully_storm() -> None:
    rules = load_rules([{"preset": "gully"}])
    # Standing water at 350 mm, a storm fills the pot (~140 mm per 15 min), the level sits
    # around the 500 mm limit, then recedes.
    course = [
        (0, 350),
        (120, 350),
        (135, 490),
        (150, 630),
        (200, 600),
        (220, 500),
        (340, 500),
        (400, 300),
        (460, 300),
    ]
    a = simulate(rules, device("gully"), path(course, 5 * MIN, 8, seed=17, name="level_mm"))
    rise_up, rise_down = once(a["gully-rising"])
    lvl_up, lvl_down = once(a["gully-level"])
    assert rise_up.severity == "warning" and 125 <= at_min(rise_up) <= 140
    assert lvl_up.severity == "critical" and 138 <= at_min(lvl_up) <= 150
    assert at_min(rise_down) < at_min(lvl_down) and at_min(lvl_down) >= 370


def test_preset_overrides_apply() -> None:
    rules = load_rules(
        [
            {
                "preset": "co2",
                "name": "school17",
                "warning": 1400,
                "for": "5m",
                "select": {"tags_all": ["school-017"]},
                "only": ["warning"],
                "command": ["notify", "--to", "caretaker"],
            }
        ]
    )
    [r] = rules
    assert r.name == "school17-warning" and r.params.for_s == 300
    assert r.selects(device("co2", "school-017")) and not r.selects(device("co2"))
    assert not r.selects(device("bin", "school-017"))
    args: dict[str, Any] = {"co2_ppm": 1450.0}
    s, alerts = evaluate(
        r,
        None,
        Reading(
            id="i",
            dev_eui=bytes(8),
            dev_addr=bytes(4),
            fcnt=1,
            f_port=1,
            payload=b"",
            time=T0,
            measurements=args,
        ),
        T0,
    )
    assert s.bad_since == T0 and alerts == []
    assert r.actions_for("raised")[0].argv == ("notify", "--to", "caretaker")  # type: ignore[union-attr]
