"""Figures for a run report's `extra` block: CPU seconds (this process, the broker) and the
counters the simulated parts keep in slotted stats objects."""

from __future__ import annotations

import os
from typing import Any

from hil.daemonproc import proc_figures
from hil.fleet import FleetDevice


def slot_values(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in getattr(obj, "__slots__", ())}


def sum_device_stats(fleet: list[FleetDevice]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in fleet:
        for k, v in slot_values(d.stack.stats).items():
            out[k] = out.get(k, 0) + v
    return out


def own_cpu_s() -> float:
    """CPU seconds of this process, every thread (the subscriber's included)."""
    t = os.times()
    return t.user + t.system


def child_cpu_s(pid: int | None) -> float | None:
    """CPU seconds of another live process (2 decimals); None when there is none."""
    figures = None if pid is None else proc_figures(pid)
    return None if figures is None else round(figures[0], 2)
