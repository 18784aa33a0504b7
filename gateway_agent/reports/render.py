"""Report object -> JSON text, CSV text (one row per device and period). Pure."""

from __future__ import annotations

import csv
import io
import json
from typing import Any


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def _cell(v: Any) -> Any:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if v is None:
        return ""
    if isinstance(v, list):
        return ";".join(str(x) for x in v)
    return v


def csv_columns(report: dict[str, Any]) -> list[str]:
    """kind, from, to, dev_eui, name, verdict, reasons, then every scalar figure in first-seen order
    (lists of numbers per day and nested tables stay in the JSON)."""
    cols = ["kind", "from", "to", "dev_eui", "name", "tags", "verdict", "reasons"]
    seen = set(cols)
    for e in report["devices"]:
        for k, v in e.items():
            if k in seen:
                continue
            if isinstance(v, dict | list) and k not in ("days_without_data", "weeks_without_flush"):
                continue
            seen.add(k)
            cols.append(k)
    if report["devices"] and "evidence" in report["devices"][0]:
        cols += ["evidence_check", "evidence_value_c", "evidence_time"]
    return cols


def render_csv(report: dict[str, Any]) -> str:
    cols = csv_columns(report)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for e in report["devices"]:
        row = {"kind": report["kind"], "from": report["from"], "to": report["to"], **e}
        ev = e.get("evidence") or {}
        row["evidence_check"] = ev.get("check")
        row["evidence_value_c"] = ev.get("value_c")
        row["evidence_time"] = ev.get("time")
        w.writerow([_cell(row.get(c)) for c in cols])
    return buf.getvalue()
