"""Rich rendering of `status`: one screen, red/amber/green."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.table import Table

from gateway_agent.status_lines import AMBER, GREEN, RED, status_checks

MARKS = {GREEN: "[green]●[/green]", AMBER: "[yellow]●[/yellow]", RED: "[red]●[/red]"}


def render_status(console: Console, st: dict[str, Any]) -> None:
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(width=2)
    t.add_column(style="bold")
    t.add_column()
    for light, what, detail in status_checks(st, time.time()):
        t.add_row(MARKS[light], what, detail)
    console.print(t)
