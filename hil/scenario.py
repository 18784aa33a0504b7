"""Scenario files (TOML) -> frozen dataclasses. Keys are documented in docs/hil.md."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

FAULT_KINDS = (
    "broker_outage",
    "agent_kill",
    "gateway_disconnect",
    "replay",
    "garbage",
    "clock_jump",
    "disk_pressure",
    "modem_unplug",
)
CLASSES = ("co2", "legionella", "bin", "gully")
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the key."""


@dataclass(frozen=True, slots=True)
class GatewaySpec:
    eui: bytes
    x_m: float = 0.0
    y_m: float = 0.0
    protocol: int = 2
    keepalive_s: float = 5.0
    stat_interval_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ModemSpec:
    format: str  # rn2483 | rui3 | lora-e5
    x_m: float = 0.0
    y_m: float = 0.0
    freq_hz: int = 868_100_000
    sf: int = 7


@dataclass(frozen=True, slots=True)
class FleetGroup:
    device_class: str
    count: int
    activation: str = "abp"  # abp | otaa
    interval_s: float | None = None  # None: the sensor model's own
    confirmed: bool = False
    indoor_loss_db: float = 10.0
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # simulated seconds from the start
    kind: str
    duration_s: float = 0.0  # simulated
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExpectAlert:
    device_class: str
    rule: str
    measurement: str
    above: float | None = None
    below: float | None = None


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    duration_s: float
    accel: float
    seed: int = 1
    start: float = 1_741_591_800.0  # Monday 2025-03-10 07:30 UTC
    max_uplinks_per_s: float = 200.0
    fetch_ms: float = 0.0  # >0: gateways batch what they heard in this much wall time
    drain_s: float = 15.0
    area_m: float = 1500.0
    live: bool = False
    description: str = ""
    gateways: tuple[GatewaySpec, ...] = ()
    modems: tuple[ModemSpec, ...] = ()
    fleet: tuple[FleetGroup, ...] = ()
    faults: tuple[Fault, ...] = ()
    rules: tuple[Mapping[str, Any], ...] = ()
    expect_alerts: tuple[ExpectAlert, ...] = ()
    channel: Mapping[str, Any] = field(default_factory=dict)
    agent_config: Mapping[str, Any] = field(default_factory=dict)  # merged into the agent's TOML

    @property
    def devices(self) -> int:
        return sum(g.count for g in self.fleet)


def _need(d: Mapping[str, Any], k: str, path: str) -> Any:
    if k not in d:
        raise ScenarioError(f"{path}.{k}: is required")
    return d[k]


def _num(d: Mapping[str, Any], k: str, path: str, default: float | None = None) -> float:
    v = d.get(k, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ScenarioError(f"{path}.{k}: expected a number")
    return float(v)


def load_scenario(doc: Mapping[str, Any], name: str = "scenario") -> Scenario:
    """Validate a parsed scenario document. Raises ScenarioError naming the key."""
    gws = []
    for i, g in enumerate(doc.get("gateways", [{"eui": "b827ebfffe000001"}])):
        p = f"gateways[{i}]"
        try:
            eui = bytes.fromhex(str(_need(g, "eui", p)))
        except ValueError:
            raise ScenarioError(f"{p}.eui: expected 16 hex digits") from None
        if len(eui) != 8:
            raise ScenarioError(f"{p}.eui: expected 16 hex digits")
        gws.append(
            GatewaySpec(
                eui,
                _num(g, "x_m", p, 0),
                _num(g, "y_m", p, 0),
                int(g.get("protocol", 2)),
                _num(g, "keepalive_s", p, 5),
                _num(g, "stat_interval_s", p, 10),
            )
        )
    modems = []
    for i, m in enumerate(doc.get("modems", [])):
        p = f"modems[{i}]"
        fmt = _need(m, "format", p)
        if fmt not in ("rn2483", "rui3", "lora-e5"):
            raise ScenarioError(f"{p}.format: expected rn2483 | rui3 | lora-e5")
        modems.append(
            ModemSpec(
                fmt,
                _num(m, "x_m", p, 0),
                _num(m, "y_m", p, 0),
                int(m.get("freq_hz", 868_100_000)),
                int(m.get("sf", 7)),
            )
        )
    fleet = []
    for i, f in enumerate(doc.get("fleet", [])):
        p = f"fleet[{i}]"
        cls = _need(f, "class", p)
        if cls not in CLASSES:
            raise ScenarioError(f"{p}.class: expected one of {', '.join(CLASSES)}")
        act = f.get("activation", "abp")
        if act not in ("abp", "otaa"):
            raise ScenarioError(f"{p}.activation: expected abp | otaa")
        fleet.append(
            FleetGroup(
                cls,
                int(_num(f, "count", p)),
                act,
                _num(f, "interval_s", p) if "interval_s" in f else None,
                bool(f.get("confirmed", False)),
                _num(f, "indoor_loss_db", p, 10),
                dict(f.get("params", {})),
                tuple(f.get("tags", ())),
            )
        )
    if not fleet:
        raise ScenarioError("fleet: at least one [[fleet]] group")
    faults = []
    for i, f in enumerate(doc.get("faults", [])):
        p = f"faults[{i}]"
        kind = _need(f, "kind", p)
        if kind not in FAULT_KINDS:
            raise ScenarioError(f"{p}.kind: expected one of {', '.join(FAULT_KINDS)}")
        rest = {k: v for k, v in f.items() if k not in ("at_s", "kind", "duration_s")}
        faults.append(Fault(_num(f, "at_s", p), kind, _num(f, "duration_s", p, 0), rest))
    expects = []
    for i, e in enumerate(doc.get("expect_alert", [])):
        p = f"expect_alert[{i}]"
        expects.append(
            ExpectAlert(
                _need(e, "class", p),
                _need(e, "rule", p),
                _need(e, "measurement", p),
                _num(e, "above", p) if "above" in e else None,
                _num(e, "below", p) if "below" in e else None,
            )
        )
    start = doc.get("start", "2025-03-10T07:30:00Z")
    try:
        start_ts = datetime.fromisoformat(str(start).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ScenarioError("start: expected an ISO 8601 time") from None
    scn = Scenario(
        name=str(doc.get("name", name)),
        duration_s=_num(doc, "duration_s", "", None)
        if "duration_s" in doc
        else _num({}, "duration_s", ""),
        accel=_num(doc, "accel", "", 1),
        seed=int(doc.get("seed", 1)),
        start=start_ts,
        max_uplinks_per_s=_num(doc, "max_uplinks_per_s", "", 200),
        fetch_ms=_num(doc, "fetch_ms", "", 0),
        drain_s=_num(doc, "drain_s", "", 15),
        area_m=_num(doc, "area_m", "", 1500),
        live=bool(doc.get("live", False)),
        description=str(doc.get("description", "")),
        gateways=tuple(gws),
        modems=tuple(modems),
        fleet=tuple(fleet),
        faults=tuple(sorted(faults, key=lambda f: f.at_s)),
        rules=tuple(doc.get("rules", [])),
        expect_alerts=tuple(expects),
        channel=dict(doc.get("channel", {})),
        agent_config=dict(doc.get("agent_config", {})),
    )
    if scn.fetch_ms < 0:
        raise ScenarioError("fetch_ms: must not be negative")
    if scn.accel <= 0 or scn.duration_s <= 0:
        raise ScenarioError("accel and duration_s must be positive")
    return scn


def find_scenario(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.exists():
        return p
    q = SCENARIO_DIR / (name_or_path if name_or_path.endswith(".toml") else f"{name_or_path}.toml")
    if q.exists():
        return q
    raise ScenarioError(f"no scenario {name_or_path!r} (looked in {SCENARIO_DIR})")


def read_scenario(name_or_path: str) -> Scenario:
    path = find_scenario(name_or_path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML: {e}") from e
    return load_scenario(doc, path.stem)
