"""Sensor models: plausible physics over simulated time, and frames the project's codecs decode to
exactly the truth values the models report."""

from __future__ import annotations

import pytest

from decoders import apply_derived, get_codec
from hil.sensors import MODELS, ClassroomCo2, make_model

EPOCH = 1_741_564_800.0  # Monday 2025-03-10 00:00 UTC


def _run(cls: str, hours: float, **params: object) -> list:
    m = make_model(cls, seed=7, epoch=EPOCH, **params)
    out = []
    t = 0.0
    while t <= hours * 3600:
        out.append((t, m.sample(t)))
        t += m.interval_s
    return out


@pytest.mark.parametrize("cls", sorted(MODELS))
def test_frames_decode_to_truth(cls: str) -> None:
    m = make_model(cls, seed=3, epoch=EPOCH)
    codec = get_codec(m.codec)
    t = 0.0
    for _ in range(300):
        s = m.sample(t)
        decoded = apply_derived(codec(s.f_port, s.payload, m.settings), m.settings)
        for name, want in s.truth.items():
            assert decoded.measurements[name] == pytest.approx(want, rel=1e-9, abs=1e-9), name
        t += m.interval_s


def test_classroom_co2_follows_the_timetable() -> None:
    samples = _run("co2", 24 * 7, interval_s=600.0)
    by_hour = {}
    for t, s in samples:
        day, hour = int(t // 86400), (t % 86400) / 3600
        by_hour.setdefault((day < 5, round(hour, 2)), []).append(s.truth["co2_ppm"])
    lesson = [c for (weekday, h), v in by_hour.items() if weekday and 14.0 <= h <= 15.3 for c in v]
    night = [c for (weekday, h), v in by_hour.items() if 1.0 <= h <= 6.0 for c in v]
    weekend = [s.truth["co2_ppm"] for t, s in samples if t >= 5 * 86400 + 12 * 3600]
    assert min(lesson) > 1000  # a full, closed classroom
    assert max(night) < 600  # empty overnight, diluted toward outdoor air
    assert max(weekend) < 600
    assert all(350 <= s.truth["co2_ppm"] <= 5000 for _, s in samples)


def test_break_ventilation_drops_co2() -> None:
    m = ClassroomCo2(rng=__import__("random").Random(1), epoch=EPOCH)
    before = m.sample(10.5 * 3600).truth["co2_ppm"]
    after = m.sample(10.75 * 3600).truth["co2_ppm"]
    assert after < before - 200


def test_failing_calorifier_sags_below_50() -> None:
    samples = _run("legionella", 48, calorifier_fail_s=24 * 3600.0, flushes_per_day=48.0)
    flushed_ok = [
        s.truth["temperature_c"] for t, s in samples if "flush" in s.events and t < 24 * 3600
    ]
    flushed_bad = [
        s.truth["temperature_c"] for t, s in samples if "flush" in s.events and t > 30 * 3600
    ]
    assert flushed_ok and min(flushed_ok) > 58
    assert flushed_bad and max(flushed_bad) < 50
    assert any("calorifier_fail" in s.events for _, s in samples)


def test_cold_outlet_stays_cold_when_flushed() -> None:
    samples = _run("legionella", 24, hot=False, flushes_per_day=48.0)
    flushed = [s.truth["temperature_c"] for _, s in samples if "flush" in s.events]
    assert flushed and max(flushed) < 13
    assert max(s.truth["temperature_c"] for _, s in samples) < 22


def test_bin_fills_gets_collected_and_burns() -> None:
    samples = _run("bin", 24 * 14, fire_at_s=3 * 86400.0 + 3600, fires_per_year=0.0)
    fills = [s.truth["fill_pct"] for _, s in samples]
    assert max(fills) > 80 and any("collection" in s.events for _, s in samples)
    fire = [s for t, s in samples if 3 * 86400 + 3600 <= t < 3 * 86400 + 3 * 3600]
    assert fire[0].truth["temperature_c"] > 50 and "fire" in fire[0].events
    normal = [s.truth["temperature_c"] for t, s in samples if t < 3 * 86400]
    assert max(normal) < 25


def test_gully_rain_and_blockage() -> None:
    samples = _run("gully", 72, blockage_at_s=48 * 3600.0, rain_events_per_day=3.0)
    before = [s.truth["level_mm"] for t, s in samples if t < 48 * 3600]
    after = [s.truth["level_mm"] for t, s in samples if t > 60 * 3600]
    assert min(before) >= 30 and max(before) < 1000
    assert min(after) > max(before) * 0.5 and max(after) > 1000


def test_battery_drains_monotonically() -> None:
    samples = _run("gully", 24 * 30, interval_s=3600.0)
    bats = [s.truth["battery_pct"] for _, s in samples]
    assert bats == sorted(bats, reverse=True) and bats[0] - bats[-1] >= 0.5


def test_seeded_models_are_reproducible() -> None:
    a = [s.payload for _, s in _run("co2", 12)]
    b = [s.payload for _, s in _run("co2", 12)]
    assert a == b
