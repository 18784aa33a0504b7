"""Builds the simulated fleet from a scenario: device stacks with real keys, sensor models,
positions, and the agent's devices file entries for the same devices."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from hil.channel import Position
from hil.lorawan_device import LorawanDevice
from hil.scenario import FleetGroup, Scenario
from hil.sensors import SensorModel, make_model

JOIN_EUI = bytes.fromhex("70b3d57ed0000000")
CLASS_NAMES = {"co2": "classroom", "legionella": "outlet", "bin": "bin", "gully": "gully"}


@dataclass(slots=True)
class FleetDevice:
    index: int
    name: str
    group: FleetGroup
    model: SensorModel
    stack: LorawanDevice
    pos: Position
    tags: tuple[str, ...]
    interval_s: float

    @property
    def dev_eui(self) -> bytes:
        return self.stack.dev_eui

    @property
    def device_class(self) -> str:
        return self.group.device_class


def build_fleet(scn: Scenario) -> list[FleetDevice]:
    rng = random.Random(scn.seed)
    out: list[FleetDevice] = []
    n = 0
    for gi, g in enumerate(scn.fleet):
        for k in range(g.count):
            n += 1
            dev_eui = bytes.fromhex("70b3d57ed1") + n.to_bytes(3, "big")
            params = dict(g.params)
            tags = list(g.tags)
            if g.device_class == "legionella":
                share = float(params.pop("hot_share", 0.5))
                hot = int((k + 1) * share) > int(k * share)  # spreads hot outlets evenly
                params["hot"] = hot
                tags += ["outlet", "hot" if hot else "cold"]
            if g.interval_s is not None:
                params["interval_s"] = g.interval_s
            model = make_model(
                g.device_class, seed=scn.seed * 1_000_003 + n, epoch=scn.start, **params
            )
            if g.activation == "otaa":
                stack = LorawanDevice(
                    dev_eui, join_eui=JOIN_EUI, app_key=rng.randbytes(16), rng=random.Random(n)
                )
            else:
                addr = (0x26000000 | (gi << 20) | n).to_bytes(4, "big")
                stack = LorawanDevice(
                    dev_eui,
                    dev_addr=addr,
                    nwk_s_key=rng.randbytes(16),
                    app_s_key=rng.randbytes(16),
                    rng=random.Random(n),
                )
            r = scn.area_m * math.sqrt(rng.random())
            a = rng.uniform(0, 2 * math.pi)
            pos = Position(r * math.cos(a), r * math.sin(a), g.indoor_loss_db)
            name = f"{CLASS_NAMES[g.device_class]}-{k + 1:03d}"
            out.append(FleetDevice(n, name, g, model, stack, pos, tuple(tags), model.interval_s))
    return out


def devices_file_entries(fleet: list[FleetDevice]) -> list[dict[str, Any]]:
    """`[[device]]` tables for the agent (DESIGN.md device file)."""
    out = []
    for d in fleet:
        s = d.stack
        e: dict[str, Any] = {
            "dev_eui": s.dev_eui.hex(),
            "name": d.name,
            "class": d.device_class,
            "codec": d.model.codec,
            "tags": list(d.tags) + ["hil"],
        }
        if s.otaa:
            assert s.join_eui is not None and s.app_key is not None
            e.update(join_eui=s.join_eui.hex(), app_key=s.app_key.hex())
        else:
            assert s.dev_addr is not None and s.nwk_s_key is not None and s.app_s_key is not None
            e.update(
                dev_addr=s.dev_addr.hex(), nwk_s_key=s.nwk_s_key.hex(), app_s_key=s.app_s_key.hex()
            )
        if d.model.settings:
            e["settings"] = dict(d.model.settings)
        out.append(e)
    return out
