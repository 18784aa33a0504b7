"""Evidence reports (issue #18): legionella log, classroom air, bins, gullies.

Entry points for the CLI, the control socket and the config loader:
`run_report` (source.py), `load_report_settings` (settings.py), `month_period` /
`date_period` (period.py), `render_json` / `render_csv` / `render_html` (render.py, html.py),
`parse_import` (importer.py). Every module except source.py is pure.
"""

from gateway_agent.reports.html import render_html
from gateway_agent.reports.period import Period, date_period, month_period
from gateway_agent.reports.render import render_csv, render_json
from gateway_agent.reports.report import KINDS, Selector, build_report
from gateway_agent.reports.settings import ReportSettings, load_report_settings
from gateway_agent.reports.source import run_report

__all__ = [
    "KINDS",
    "Period",
    "ReportSettings",
    "Selector",
    "build_report",
    "date_period",
    "load_report_settings",
    "month_period",
    "render_csv",
    "render_html",
    "render_json",
    "run_report",
]
