"""Report object -> one self-contained HTML file: inline CSS, inline SVG, no script, no network;
prints on A4 (@page). Written to be filed as the site's monitoring record. Pure."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from gateway_agent.reports.svg import line_chart

DOT, DASH = " \u00b7 ", "\u2014"
TITLES = {
    "legionella": "Legionella control: sentinel outlet monitoring log",
    "co2": "Classroom air quality (CO\u2082): school-day report",
    "bins": "Waste bins: fill and collections",
    "gullies": "Gullies and culverts: water level",
}
SOURCES = {
    "legionella": "HSE ACOP L8 and HSG274 Part 2: hot outlets reach at least 50 \u00b0C "
    "(55 \u00b0C in healthcare premises), cold outlets stay below 20 \u00b0C, calorifier flow at "
    "least 60 \u00b0C and return at least 50 \u00b0C; little-used outlets flushed weekly.",
    "co2": "DfE Building Bulletin 101 (2018): daily mean over occupied hours and the longest "
    "continuous run above the peak level, by the room's ventilation type; SAMHE guidance.",
    "bins": "Collections are falls in fill; thresholds set in the [reports.bins] configuration.",
    "gullies": "Warning levels per gully; the dry-weather baseline is the daily minimum level.",
}
CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.35 "DejaVu Sans", Arial, Helvetica, sans-serif; color: #111; margin: 0 auto;
       max-width: 190mm; padding: 8px; }
h1 { font-size: 16pt; margin: 0 0 4px; } h2 { font-size: 13pt; margin: 18px 0 6px;
     border-bottom: 1px solid #888; } h3 { font-size: 11.5pt; margin: 12px 0 4px; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; font-size: 9pt; }
th, td { border: 1px solid #bbb; padding: 2px 5px; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; }
.pass { color: #0a6b0a; font-weight: bold; } .fail { color: #b00000; font-weight: bold; }
.insufficient_data { color: #8a5a00; font-weight: bold; }
.meta { color: #333; font-size: 9pt; } .box { border: 1px solid #999; padding: 6px 8px; margin: 8px 0; }
.device { break-inside: avoid; page-break-inside: avoid; margin-bottom: 10px; }
.chart { display: block; max-width: 100%; height: auto; }
.chart .grid { stroke: #ddd; stroke-width: 1; } .chart text { font-size: 9px; fill: #333; }
.chart .yl { text-anchor: end; } .chart .xl { text-anchor: middle; } .chart .ll { text-anchor: end; }
.chart .ct { font-weight: bold; }
.sign td { height: 28px; }
@media print { body { padding: 0; } h2 { break-after: avoid; } a { color: inherit; } }
"""


def _v(v: Any) -> str:
    if v is None:
        return "\u2013"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v) or "none"
    return str(v)


def _verdict(v: str) -> str:
    return f'<span class="{escape(v)}">{escape(v.replace("_", " "))}</span>'


def _table(head: list[str], rows: list[list[Any]]) -> str:
    # Field names as words, so a wide table's headers wrap to fit A4 instead of overflowing.
    h = "".join(f"<th>{escape(c.replace('_', ' '))}</th>" for c in head)
    body = []
    for r in rows:
        cells = []
        for c in r:
            if isinstance(c, tuple):  # pre-rendered HTML
                cells.append(f"<td>{c[0]}</td>")
            else:
                cls = (
                    ' class="num"' if isinstance(c, int | float) and not isinstance(c, bool) else ""
                )
                cells.append(f"<td{cls}>{escape(_v(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{h}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _day_labels(report: dict[str, Any]) -> list[str]:
    a, b = dt.date.fromisoformat(report["from"]), dt.date.fromisoformat(report["to"])
    return [(a + dt.timedelta(days=i)).strftime("%d") for i in range((b - a).days + 1)]


def _summary_cols(kind: str, devices: list[dict[str, Any]]) -> list[str]:
    if kind == "legionella":
        return ["outlet", "healthcare", "days_with_data", "flush_events", "weeks_without_flush"]
    if kind == "co2":
        extra = sorted({k for d in devices for k in d if k.startswith("minutes_above_")})
        return ["ventilation", "school_days", "days_fail", "mean_ppm", "max_ppm", *extra]
    if kind == "bins":
        return ["collections_count", "mean_fill_at_collection_pct", "wasted_collections",
                "hours_above_overflow", "current_interval_days", "suggested_interval_days"]  # fmt: skip
    return ["warning_level_mm", "minutes_above_warning", "peak_mm", "rise_events_count",
            "baseline_slope_mm_per_30d", "silt_suspected"]  # fmt: skip


def _device_detail(kind: str, d: dict[str, Any], labels: list[str], s: dict[str, Any]) -> str:
    out = []
    if kind == "legionella":
        lines = [
            (f"{c['check']} {c['threshold_c']:g} \u00b0C", c["threshold_c"], "#b00000")
            for c in d["checks"]
        ]
        out.append(line_chart(labels, [("daily max", d["daily_max_c"], "#c0392b"),
                                       ("daily min", d["daily_min_c"], "#2471a3")], lines, "\u00b0C"))  # fmt: skip
        rows = []
        for w in d["weeks"]:
            ev = "; ".join(
                f"{c['check']}: {_verdict(c['verdict'])}"
                + (
                    f" {escape(_v(c['evidence']['value_c']))} \u00b0C at {escape(c['evidence']['time'])}"
                    if c["evidence"]
                    else ""
                )
                for c in w["checks"]
            )
            rows.append([w["week"], f"{w['from']} to {w['to']}", (_verdict(w["verdict"]),), (ev,),
                         w["flushes"], w["first_flush"]])  # fmt: skip
        out.append(
            _table(
                ["week", "days", "verdict", "checks and evidence", "flushes", "first flush"], rows
            )
        )
        if d["days_without_data"]:
            out.append(f"<p>Days with no data: {escape(', '.join(d['days_without_data']))}</p>")
    elif kind == "co2":
        days = {x["date"]: x for x in d["days"]}
        a = dt.date.fromisoformat(s["from"])
        means = [
            days.get((a + dt.timedelta(days=i)).isoformat(), {}).get("mean_ppm")
            for i in range(len(labels))
        ]
        maxes = [
            days.get((a + dt.timedelta(days=i)).isoformat(), {}).get("max_ppm")
            for i in range(len(labels))
        ]
        c = d["criteria"]
        out.append(line_chart(labels, [("daily mean", means, "#2471a3"), ("daily max", maxes, "#c0392b")],
                              [(f"mean < {c['mean_below_ppm']:g}", c["mean_below_ppm"], "#2471a3"),
                               (f"peak {c['peak_ppm']:g}", c["peak_ppm"], "#b00000")], "ppm"))  # fmt: skip
        keys = [
            k
            for k in (d["days"][0] if d["days"] else {})
            if k.startswith(("minutes_above_", "longest_above_")) and not k.endswith("_from")
        ]
        for x in d["days"]:
            keys += [
                k
                for k in x
                if k.startswith(("minutes_above_", "longest_above_"))
                and not k.endswith("_from")
                and k not in keys
            ]
        rows = [
            [
                x["date"],
                (_verdict(x["verdict"]),),
                ", ".join(x.get("reasons", [])),
                x.get("mean_ppm"),
                x.get("max_ppm"),
                *[x.get(k) for k in keys],
                x.get("coverage_pct"),
            ]  # fmt: skip
            for x in d["days"]
            if x["verdict"] != "pass"
        ]
        if rows:
            out.append("<h3>School days not passing</h3>")
            out.append(
                _table(["date", "verdict", "why", "mean ppm", "max ppm", *keys, "coverage %"], rows)
            )
    elif kind == "bins":
        out.append(line_chart(labels, [("daily max fill", d["daily_max_pct"], "#7d3c98")],
                              [("overflow", s["settings"]["overflow_pct"], "#b00000"),
                               ("wasted below", s["settings"]["wasted_below_pct"], "#8a5a00")], "%"))  # fmt: skip
        if d["collections"]:
            out.append(_table(["collected", "fill %", "after %", "wasted trip"],
                              [[c["time"], c["fill_pct"], c["after_pct"], c["wasted"]] for c in d["collections"]]))  # fmt: skip
    else:
        out.append(line_chart(labels, [("daily max", d["daily_max_mm"], "#c0392b"), ("daily min (baseline)", d["daily_min_mm"], "#2471a3")],
                              [("warning", d["warning_level_mm"], "#b00000")], "mm"))  # fmt: skip
        if d["rise_events"]:
            out.append(_table(["time", "from mm", "to mm", "rise mm", "minutes"],
                              [[e["time"], e["from_mm"], e["to_mm"], e["rise_mm"], e["minutes"]] for e in d["rise_events"]]))  # fmt: skip
    return "".join(out)


def render_html(report: dict[str, Any], generated_at: str | None = None, site: str = "") -> str:
    """`generated_at` and `site` only label the page (the report object stays reproducible)."""
    kind = report["kind"]
    title = TITLES.get(kind, kind)
    devices = report["devices"]
    labels = _day_labels(report)
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)} {escape(report['from'])} to {escape(report['to'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        '<p class="meta">'
        + (escape(site) + DOT if site else "")
        + f"Period {escape(report['from'])} to {escape(report['to'])} ({escape(report['timezone'])} time)"
        + (DOT + "generated " + escape(generated_at) if generated_at else "")
        + "</p>",
        f'<div class="box"><b>Criteria.</b> {escape(SOURCES.get(kind, ""))}</div>',
    ]
    sm = report["summary"]
    parts.append(
        f"<p><b>{sm['devices']}</b> devices: {_verdict('pass')} {sm['pass']}, {_verdict('fail')} "
        f"{sm['fail']}, {_verdict('insufficient_data')} {sm['insufficient_data']}.</p>"
    )
    cols = _summary_cols(kind, devices)
    parts.append("<h2>Summary</h2>")
    parts.append(_table(["device", "DevEUI", "verdict", "why", *cols],
                        [[d["name"], d["dev_eui"], (_verdict(d["verdict"]),), ", ".join(d.get("reasons", [])),
                          *[d.get(c) for c in cols]] for d in devices]))  # fmt: skip
    if report.get("worst_rooms"):
        parts.append("<h3>The month's worst rooms</h3>")
        parts.append(_table(["room", "failing days", "worst day", "mean ppm"],
                            [[w["name"] or w["dev_eui"], w["days_fail"], w["worst_day"], w["mean_ppm"]] for w in report["worst_rooms"]]))  # fmt: skip
    parts.append("<h2>Devices</h2>")
    for d in devices:
        parts.append('<section class="device">')
        parts.append(
            f"<h3>{escape(d['name'] or d['dev_eui'])} {DASH} {_verdict(d['verdict'])}</h3>"
        )
        parts.append(f'<p class="meta">DevEUI {escape(d["dev_eui"])}; tags {escape(_v(d.get("tags", [])))}'
                     + (f"; first problem {escape(d['first_problem'])}" if d.get("first_problem") else "") + "</p>")  # fmt: skip
        parts.append(_device_detail(kind, d, labels, report))
        parts.append("</section>")
    v = report["value"]
    parts.append("<h2>Value</h2>")
    parts.append("<ul>" + "".join(f"<li>{escape(s)}</li>" for s in v["sums"]) + "</ul>")
    if v["problems_found_earlier"]:
        parts.append(_table(["device", "found", "next visit", "days earlier"],
                            [[p["name"] or p["dev_eui"], p["found"], p["next_visit"], p["days_earlier"]] for p in v["problems_found_earlier"]]))  # fmt: skip
    parts.append("<h2>Record</h2>")
    parts.append('<table class="sign"><tr><th>Reviewed by</th><td></td><th>Signature</th><td></td></tr>'
                 "<tr><th>Date</th><td></td><th>Actions taken</th><td></td></tr></table>")  # fmt: skip
    parts.append("</body></html>\n")
    return "".join(parts)
