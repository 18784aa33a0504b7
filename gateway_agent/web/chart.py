"""Server-side SVG charts: a measurement's series downsampled into fixed buckets. Pure.

Work is bounded by the rows given (the caller caps them) and the output by BUCKETS, whatever the
range: one polyline of bucket means and a band from bucket minimum to maximum.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

BUCKETS = 240  # one per 3 px of the 720-px plot: more points would not show
RANGES = {"24h": 86_400.0, "7d": 7 * 86_400.0, "30d": 30 * 86_400.0}
W, H, LEFT, RIGHT, TOP, BOTTOM = 720, 220, 56, 8, 10, 28


@dataclass(frozen=True, slots=True)
class Series:
    measurement: str
    t0: float
    t1: float
    # per bucket: (index, min, mean, max), buckets without readings left out
    buckets: tuple[tuple[int, float, float, float], ...]
    count: int
    last: float | None


def downsample(
    rows: Iterable[Mapping[str, Any]], t0: float, t1: float, buckets: int = BUCKETS
) -> dict[str, Series]:
    """Readings (`time`, `measurements`) between t0 and t1 -> one Series per measurement."""
    span = max(t1 - t0, 1e-9)
    acc: dict[str, dict[int, list[float]]] = {}
    counts: dict[str, int] = {}
    last: dict[str, tuple[float, float]] = {}
    for r in rows:
        t = r.get("time")
        ms = r.get("measurements")
        if not isinstance(t, int | float) or not isinstance(ms, Mapping) or not t0 <= t <= t1:
            continue
        i = min(int((t - t0) / span * buckets), buckets - 1)
        for name, v in ms.items():
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                continue
            b = acc.setdefault(name, {}).get(i)
            if b is None:
                acc[name][i] = [v, v, v, 1.0]  # min, max, sum, n
            else:
                b[0], b[1], b[2], b[3] = min(b[0], v), max(b[1], v), b[2] + v, b[3] + 1
            counts[name] = counts.get(name, 0) + 1
            if name not in last or t >= last[name][0]:
                last[name] = (t, float(v))
    return {
        name: Series(
            name,
            t0,
            t1,
            tuple((i, b[0], b[2] / b[3], b[1]) for i, b in sorted(by.items())),
            counts[name],
            last[name][1],
        )
        for name, by in sorted(acc.items())
    }


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _when(t: float, span: float) -> str:
    fmt = "%H:%M" if span <= 86_400 else "%d %b"
    return time.strftime(fmt, time.localtime(t))


def svg(s: Series, buckets: int = BUCKETS) -> str:
    """The series as an inline SVG (no script, no style attribute: a strict CSP allows it)."""
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    lo = min(b[1] for b in s.buckets)
    hi = max(b[3] for b in s.buckets)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1

    def x(i: int) -> float:
        return LEFT + (i + 0.5) / buckets * pw

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * ph

    band = " ".join(f"{x(i):.1f},{y(mx):.1f}" for i, _, _, mx in s.buckets)
    band += " " + " ".join(f"{x(i):.1f},{y(mn):.1f}" for i, mn, _, _ in reversed(s.buckets))
    line = " ".join(f"{x(i):.1f},{y(mean):.1f}" for i, _, mean, _ in s.buckets)
    name = escape(s.measurement)
    span = s.t1 - s.t0
    desc = (
        f"{s.count} readings from {_when(s.t0, span)} to {_when(s.t1, span)}: "
        f"lowest {_fmt(lo)}, highest {_fmt(hi)}, latest {_fmt(s.last or 0)}"
    )
    mid = (lo + hi) / 2
    return (
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="t-{name} d-{name}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="none">'
        f'<title id="t-{name}">{name}</title><desc id="d-{name}">{escape(desc)}</desc>'
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#000"/>'
        + "".join(
            f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="#000">{_fmt(v)}</text>'
            for v in (hi, mid, lo)
        )
        + f'<text x="{LEFT}" y="{H - 8}" font-size="12" fill="#000">{_when(s.t0, span)}</text>'
        f'<text x="{W - RIGHT}" y="{H - 8}" font-size="12" text-anchor="end" fill="#000">'
        f"{_when(s.t1, span)}</text>"
        f'<polygon points="{band}" fill="#9cc3e6" stroke="none"/>'
        f'<polyline points="{line}" fill="none" stroke="#003a70" stroke-width="2"/>'
        "</svg>"
    )
