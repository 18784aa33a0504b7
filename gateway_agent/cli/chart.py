"""Terminal charts from unicode block characters (works over any SSH, no extra dependency).

Pure: points in, lines of text out.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

BLOCKS = " ▁▂▃▄▅▆▇█"
SPARKS = "▁▂▃▄▅▆▇█"


def bucket(
    points: Sequence[tuple[float, float]], t0: float, t1: float, width: int
) -> list[float | None]:
    """Mean value per column over [t0, t1]; None where a column has no point."""
    if width <= 0:
        return []
    sums = [0.0] * width
    counts = [0] * width
    span = max(t1 - t0, 1e-9)
    for t, v in points:
        if not math.isfinite(v):
            continue
        i = min(width - 1, max(0, int((t - t0) / span * width)))
        sums[i] += v
        counts[i] += 1
    return [s / c if c else None for s, c in zip(sums, counts, strict=True)]


def fill_gaps(values: Sequence[float | None]) -> list[float | None]:
    """Carry a value across empty columns that only reflect the sampling interval (a gap up to
    twice the median spacing); longer gaps stay empty, so missing data is visible."""
    out = list(values)
    idx = [i for i, v in enumerate(out) if v is not None]
    if len(idx) < 3:
        return out
    diffs = sorted(b - a for a, b in zip(idx, idx[1:], strict=False))
    limit = 2 * diffs[len(diffs) // 2]
    for a, b in zip(idx, idx[1:], strict=False):
        if 1 < b - a <= limit:
            for i in range(a + 1, b):
                out[i] = out[a]
    return out


def value_range(values: Sequence[float | None]) -> tuple[float, float]:
    vals = [v for v in values if v is not None]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-9:  # a flat line still gets a visible band
        pad = abs(lo) * 0.05 or 1.0
        return lo - pad, hi + pad
    return lo, hi


def sparkline(values: Sequence[float | None]) -> str:
    lo, hi = value_range(values)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            out.append(SPARKS[min(7, max(0, int((v - lo) / (hi - lo) * 8)))])
    return "".join(out)


def bars(values: Sequence[float | None], height: int, lo: float, hi: float) -> list[str]:
    """`height` rows, top first; each column filled in eighths up to its value."""
    levels = []
    for v in values:
        if v is None:
            levels.append(0)
        else:
            frac = (v - lo) / (hi - lo) if hi > lo else 0.5
            levels.append(max(1, min(height * 8, round(frac * height * 8))))
    rows = []
    for r in range(height):
        base = (height - 1 - r) * 8
        rows.append("".join(BLOCKS[min(8, max(0, lv - base))] for lv in levels))
    return rows


def _num(v: float) -> str:
    return f"{v:.4g}"


def _clock(t: float, span_s: float) -> str:
    d = dt.datetime.fromtimestamp(t)
    return d.strftime("%H:%M") if span_s <= 86400 else d.strftime("%m-%d %H:%M")


def plot(
    points: Sequence[tuple[float, float]],
    width: int,
    height: int,
    t0: float | None = None,
    t1: float | None = None,
) -> list[str]:
    """A bar chart with a y axis (min/mid/max) and a time axis; `width` is the whole line."""
    if not points:
        return ["(no data)"]
    t0 = min(t for t, _ in points) if t0 is None else t0
    t1 = max(t for t, _ in points) if t1 is None else t1
    # The axis is labelled with the scale of the bars (column means), found in two passes
    # because the label width decides the column count.
    lw = 6
    for _ in range(2):
        cols = max(8, width - lw - 2)
        values = bucket(points, t0, t1, cols)
        lo, hi = value_range(values)
        labels = [_num(hi), _num((hi + lo) / 2), _num(lo)]
        lw = max(len(s) for s in labels)
    cols = max(8, width - lw - 2)
    values = fill_gaps(bucket(points, t0, t1, cols))
    rows = bars(values, height, lo, hi)
    out = []
    for i, row in enumerate(rows):
        if i == 0:
            lab = labels[0]
        elif i == height - 1:
            lab = labels[2]
        elif i == height // 2 and height >= 5:
            lab = labels[1]
        else:
            lab = ""
        out.append(f"{lab:>{lw}} ┤{row}")
    left, right = _clock(t0, t1 - t0), _clock(t1, t1 - t0)
    out.append(" " * lw + " └" + "─" * cols)
    gap = max(1, cols - len(left) - len(right))
    out.append(" " * (lw + 2) + left + " " * gap + right)
    return out
