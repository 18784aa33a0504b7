"""Sensor physics for the simulated fleet: classroom CO2, outlet temperatures, bins, gullies.

Each model evolves over simulated time (seeded) and encodes a real device frame from
devices/FORMATS.md, with the truth values the agent's decoded measurements must match.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Sample:
    f_port: int
    payload: bytes
    truth: Mapping[str, float]  # normalized measurements (FORMATS.md names), already quantized
    events: tuple[str, ...] = ()  # what happened since the last sample ("fire", "blockage", ...)


class SensorModel(Protocol):
    device_class: str
    codec: str
    interval_s: float
    settings: Mapping[str, Any]

    def sample(self, t: float) -> Sample: ...


MODELS: dict[str, Callable[..., SensorModel]] = {}


def model(name: str) -> Callable[[Callable[..., SensorModel]], Callable[..., SensorModel]]:
    def deco(cls: Callable[..., SensorModel]) -> Callable[..., SensorModel]:
        if name in MODELS:
            raise ValueError(f"duplicate sensor model {name}")
        MODELS[name] = cls
        return cls

    return deco


def _local(t: float, epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch + t, UTC)


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


@dataclass(slots=True)
class Battery:
    """Linear-ish drain in percent per simulated day, with a little noise; never below 1 %."""

    pct: float
    drain_pct_per_day: float

    def at(self, dt_s: float) -> int:
        self.pct = max(1.0, self.pct - self.drain_pct_per_day * dt_s / 86400.0)
        return int(self.pct)


def school_occupancy(now: datetime) -> float:
    """Fraction of pupils present: school days 9:00-15:30, break 10:30-10:45, lunch 12:15-13:00."""
    if now.weekday() >= 5:
        return 0.0
    h = now.hour + now.minute / 60.0
    if h < 9.0 or h >= 15.5:
        return 0.0
    if 10.5 <= h < 10.75 or 12.25 <= h < 13.0:
        return 0.1  # a few stay in
    return 1.0


@model("co2")
@dataclass(slots=True)
class ClassroomCo2:
    """Single-zone CO2 mass balance (Milesight EM500-CO2 frame): pupils breathe, air changes
    dilute toward outdoor air; windows open during breaks. Room 180 m3, 28 pupils."""

    rng: random.Random
    epoch: float
    interval_s: float = 600.0
    pupils: int = 28
    volume_m3: float = 180.0
    ach_closed: float = 1.2
    ach_open: float = 6.0
    outdoor_ppm: float = 420.0
    device_class: str = "co2"
    codec: str = "milesight/em500-co2"
    settings: Mapping[str, Any] = field(default_factory=dict)
    co2: float = 450.0
    temp: float = 18.5
    last_t: float = 0.0
    battery: Battery = field(default_factory=lambda: Battery(98.0, 0.05))

    def _step(self, t: float) -> None:
        while self.last_t < t:
            dt = min(60.0, t - self.last_t)
            now = _local(self.last_t, self.epoch)
            occ = school_occupancy(now)
            gen = occ * self.pupils * 4.5e-6  # m3/s of CO2 (seated child, ~0.0045 L/s)
            ach = self.ach_open if 0.0 < occ < 1.0 else self.ach_closed
            q = self.volume_m3 * ach / 3600.0
            steady = self.outdoor_ppm + gen / q * 1e6
            self.co2 = steady + (self.co2 - steady) * math.exp(-q / self.volume_m3 * dt)
            target_temp = 18.0 + 3.5 * occ
            self.temp += (target_temp - self.temp) * (1 - math.exp(-dt / 3600.0))
            self.last_t += dt

    def sample(self, t: float) -> Sample:
        dt = t - self.last_t
        self._step(t)
        co2 = int(_clamp(self.co2 + self.rng.gauss(0, 15), 350, 5000))
        temp10 = round((self.temp + self.rng.gauss(0, 0.1)) * 10)
        hum2 = int(_clamp(round((40 + (self.co2 - 420) / 120 + self.rng.gauss(0, 1)) * 2), 0, 200))
        pres10 = round((1013.0 + 8 * math.sin(t / 86400.0) + self.rng.gauss(0, 0.2)) * 10)
        bat = self.battery.at(dt)
        payload = (
            bytes([0x01, 0x75, bat])
            + b"\x03\x67"
            + struct.pack("<h", temp10)
            + bytes([0x04, 0x68, hum2])
            + b"\x05\x7d"
            + struct.pack("<H", co2)
            + b"\x06\x73"
            + struct.pack("<H", pres10)
        )
        truth = {
            "battery_pct": float(bat),
            "temperature_c": temp10 / 10,
            "humidity_pct": hum2 / 2,
            "co2_ppm": float(co2),
            "pressure_hpa": pres10 / 10,
        }
        return Sample(85, payload, truth)


@model("legionella")
@dataclass(slots=True)
class OutletTemperature:
    """A PT100 strapped to a hot or cold outlet pipe (Milesight EM500-PT100 frame). Idle pipes
    drift to room temperature; a flush pulls the supply temperature through. A failing
    calorifier lets the hot supply sag below 50 °C after `calorifier_fail_s`."""

    rng: random.Random
    epoch: float
    interval_s: float = 900.0
    hot: bool = True
    ambient_c: float = 21.0
    supply_hot_c: float = 61.0
    supply_cold_c: float = 11.0
    calorifier_fail_s: float | None = None
    flushes_per_day: float = 8.0
    device_class: str = "legionella"
    codec: str = "milesight/em500-pt100"
    settings: Mapping[str, Any] = field(default_factory=dict)
    pipe: float = 21.0
    last_t: float = 0.0
    battery: Battery = field(default_factory=lambda: Battery(95.0, 0.03))

    def supply(self, t: float) -> float:
        if not self.hot:
            return self.supply_cold_c
        if self.calorifier_fail_s is not None and t >= self.calorifier_fail_s:
            hours = (t - self.calorifier_fail_s) / 3600.0
            return max(38.0, self.supply_hot_c - 6.0 * hours)  # losing ~6 °C an hour
        return self.supply_hot_c

    def sample(self, t: float) -> Sample:
        dt = max(0.0, t - self.last_t)
        events: list[str] = []
        p_flush = 1 - math.exp(-self.flushes_per_day * dt / 86400.0)
        if self.rng.random() < p_flush:
            self.pipe = self.supply(t) + self.rng.gauss(0, 0.3)
            events.append("flush")
        else:
            self.pipe = self.ambient_c + (self.pipe - self.ambient_c) * math.exp(-dt / 1800.0)
        if self.calorifier_fail_s is not None and self.last_t < self.calorifier_fail_s <= t:
            events.append("calorifier_fail")
        self.last_t = t
        temp10 = round(self.pipe * 10)
        bat = self.battery.at(dt)
        payload = bytes([0x01, 0x75, bat]) + b"\x03\x67" + struct.pack("<h", temp10)
        return Sample(
            85, payload, {"battery_pct": float(bat), "temperature_c": temp10 / 10}, tuple(events)
        )


@model("bin")
@dataclass(slots=True)
class BinFill:
    """A litter bin with a Milesight EM400-MUD (distance + internal temperature). Fills during
    the day, collected when the round comes by; now and then a fire (temperature spike)."""

    rng: random.Random
    epoch: float
    interval_s: float = 3600.0
    empty_mm: int = 1200
    full_mm: int = 150
    fill_pct_per_day: float = 35.0
    fire_at_s: float | None = None
    fires_per_year: float = 0.5
    device_class: str = "bin"
    codec: str = "milesight/em400-mud"
    settings: Mapping[str, Any] = field(default_factory=dict)
    fill: float = 10.0
    fire_until: float = -1.0
    last_t: float = 0.0
    battery: Battery = field(default_factory=lambda: Battery(90.0, 0.02))

    def __post_init__(self) -> None:
        self.settings = {"empty_distance_mm": self.empty_mm, "full_distance_mm": self.full_mm}

    def sample(self, t: float) -> Sample:
        dt = max(0.0, t - self.last_t)
        now = _local(t, self.epoch)
        events: list[str] = []
        day_weight = 1.6 if 8 <= now.hour < 20 else 0.2
        self.fill = min(100.0, self.fill + self.fill_pct_per_day * day_weight * dt / 86400.0)
        if self.fill > 85.0 and 6 <= now.hour < 12 and self.rng.random() < 0.5:
            self.fill = self.rng.uniform(0.0, 4.0)
            events.append("collection")
        fire = self.fire_at_s is not None and self.last_t < self.fire_at_s <= t
        fire = fire or self.rng.random() < 1 - math.exp(-self.fires_per_year * dt / (365 * 86400.0))
        if fire:
            self.fire_until = t + 1800.0
            events.append("fire")
        self.last_t = t
        ambient = 10.0 + 6.0 * math.sin((now.hour - 9) / 24.0 * 2 * math.pi)
        temp = ambient + (self.rng.uniform(55, 80) if t < self.fire_until else 0.0)
        temp10 = round(temp * 10)
        span = self.empty_mm - self.full_mm
        dist = int(
            _clamp(self.empty_mm - self.fill / 100.0 * span + self.rng.gauss(0, 8), 30, 4000)
        )
        bat = self.battery.at(dt)
        payload = (
            bytes([0x01, 0x75, bat])
            + b"\x03\x67"
            + struct.pack("<h", temp10)
            + b"\x04\x82"
            + struct.pack("<H", dist)
            + b"\x05\x00\x00"
        )
        fill_pct = round(_clamp(100.0 * (self.empty_mm - dist) / span, 0.0, 100.0), 1)
        truth = {
            "battery_pct": float(bat),
            "temperature_c": temp10 / 10,
            "distance_mm": float(dist),
            "fill_pct": fill_pct,
        }
        return Sample(85, payload, truth, tuple(events))


@model("gully")
@dataclass(slots=True)
class GullyLevel:
    """A road gully with a Milesight EM500-UDL looking down. Rain raises the water, which drains
    with a ~20 min time constant; a blockage (`blockage_at_s`) stops the draining."""

    rng: random.Random
    epoch: float
    interval_s: float = 900.0
    mount_mm: int = 1500
    base_mm: float = 60.0
    rain_events_per_day: float = 1.5
    blockage_at_s: float | None = None
    device_class: str = "gully"
    codec: str = "milesight/em500-udl"
    settings: Mapping[str, Any] = field(default_factory=dict)
    level: float = 60.0
    rain_until: float = -1.0
    rain_mm_per_h: float = 0.0
    last_t: float = 0.0
    battery: Battery = field(default_factory=lambda: Battery(99.0, 0.02))

    def __post_init__(self) -> None:
        self.settings = {"mount_height_mm": self.mount_mm}

    def sample(self, t: float) -> Sample:
        dt = max(0.0, t - self.last_t)
        events: list[str] = []
        if t >= self.rain_until and self.rng.random() < 1 - math.exp(
            -self.rain_events_per_day * dt / 86400.0
        ):
            self.rain_until = t + self.rng.uniform(1800, 7200)
            self.rain_mm_per_h = self.rng.uniform(2, 15)
            events.append("rain")
        blocked = self.blockage_at_s is not None and t >= self.blockage_at_s
        if self.blockage_at_s is not None and self.last_t < self.blockage_at_s <= t:
            events.append("blockage")
        inflow = 60.0 * self.rain_mm_per_h if t < self.rain_until else 0.0  # mm of gully per hour
        if blocked:
            inflow += 400.0  # surface water keeps arriving and nothing leaves
            self.level = min(self.mount_mm - 100.0, self.level + inflow * dt / 3600.0)
        else:
            steady = self.base_mm + inflow * 20.0 / 60.0
            self.level = steady + (self.level - steady) * math.exp(-dt / 1200.0)
        self.last_t = t
        dist = int(_clamp(self.mount_mm - self.level + self.rng.gauss(0, 3), 20, 10000))
        bat = self.battery.at(dt)
        payload = bytes([0x01, 0x75, bat]) + b"\x03\x82" + struct.pack("<H", dist)
        truth = {
            "battery_pct": float(bat),
            "distance_mm": float(dist),
            "level_mm": float(max(0, self.mount_mm - dist)),
        }
        return Sample(85, payload, truth, tuple(events))


def make_model(device_class: str, seed: int, epoch: float, **params: Any) -> SensorModel:
    """A model for a device class (`co2`, `legionella`, `bin`, `gully`), seeded."""
    try:
        cls = MODELS[device_class]
    except KeyError:
        raise ValueError(f"no sensor model for class {device_class!r}") from None
    return cls(rng=random.Random(seed), epoch=epoch, **params)
