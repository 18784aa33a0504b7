"""Small inline SVG line charts for the HTML reports (no script, no external resource). Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

Series = tuple[str, Sequence[float | None], str]  # label, one value per x, colour
Line = tuple[str, float, str]  # label, y, colour
CHARTABLE = 1e12  # no sensor reads beyond this; such a value (a codec bug) is not drawn


def _nice(lo: float, hi: float) -> tuple[float, float, float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return math.floor(lo / step) * step, math.ceil(hi / step) * step, step


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    lines: Sequence[Line] = (),
    unit: str = "",
    width: int = 680,
    height: int = 170,
    title: str = "",
) -> str:
    """One value per label (a day); None leaves a gap. Threshold `lines` are dashed."""

    def drawn(v: float | None) -> bool:
        return v is not None and math.isfinite(v) and abs(v) <= CHARTABLE

    series = [(lab, [v if drawn(v) else None for v in ys], c) for lab, ys, c in series]
    lines = [ln for ln in lines if drawn(ln[1])]
    vals = [v for _, ys, _ in series for v in ys if v is not None]
    vals += [y for _, y, _ in lines]
    if not labels or not vals:
        return '<p class="nochart">No data to chart.</p>'
    lo, hi, step = _nice(min(vals), max(vals))
    left, right, top, bottom = 48, 10, 18, 28
    pw, ph = width - left - right, height - top - bottom
    n = len(labels)

    def x(i: int) -> float:
        return left + (pw * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" class="chart">'
    ]
    if title:
        out.append(f'<text x="{left}" y="12" class="ct">{escape(title)}</text>')
    v = lo
    while v <= hi + step / 2:
        yy = y(v)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>'
        )
        out.append(f'<text x="{left - 4}" y="{yy + 3:.1f}" class="yl">{v:g}</text>')
        v += step
    every = max(1, math.ceil(n / 16))
    for i, lab in enumerate(labels):
        if i % every == 0:
            out.append(f'<text x="{x(i):.1f}" y="{height - 10}" class="xl">{escape(lab)}</text>')
    for lab, yv, colour in lines:
        yy = y(yv)
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{colour}" stroke-dasharray="5 3" stroke-width="1.2"/>'
            f'<text x="{width - right - 2}" y="{yy - 3:.1f}" class="ll" fill="{colour}">'
            f"{escape(lab)}</text>"
        )
    for _lab, ys, colour in series:
        run: list[str] = []
        for i, val in enumerate(ys):
            if val is None or not math.isfinite(val):
                if len(run) > 1:
                    out.append(
                        f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
                    )
                run = []
                continue
            run.append(f"{x(i):.1f},{y(val):.1f}")
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(val):.1f}" r="1.8" fill="{colour}"/>')
        if len(run) > 1:
            out.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
            )
    legend_x = left + 4
    for lab, _, colour in series:
        out.append(f'<rect x="{legend_x}" y="{top + 2}" width="8" height="8" fill="{colour}"/>')
        out.append(
            f'<text x="{legend_x + 11}" y="{top + 10}" class="lg">{escape(lab)}{" (" + escape(unit) + ")" if unit else ""}</text>'
        )
        legend_x += 12 + 7 * (len(lab) + len(unit) + 3)
    out.append("</svg>")
    return "".join(out)
