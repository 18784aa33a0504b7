"""A report request as it arrives on the control socket: every bad field is a ConfigError naming
it (the daemon answers it as an error line), never a crash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway_agent.errors import ConfigError
from gateway_agent.reports.request import run_request
from gateway_agent.reports.settings import ReportSettings
from gateway_agent.store import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "agent.db"
    Store(path, "NORMAL").close()
    return path


@pytest.mark.parametrize(
    ("req", "field"),
    [
        ({"kind": "boilers", "month": "2026-01"}, "kind"),
        ({"kind": None}, "kind"),
        ({"kind": "co2", "month": 202601}, "month"),
        ({"kind": "co2", "month": "2026-13"}, "month"),
        ({"kind": "co2", "from": "2026-01-01"}, "to"),
        ({"kind": "co2", "from": ["x"], "to": "2026-01-02"}, "from"),
        ({"kind": "co2", "month": "2026-01", "devices": "70b3d57ed0000001"}, "devices"),
        ({"kind": "co2", "month": "2026-01", "devices": ["zz"]}, "devices"),
        ({"kind": "co2", "month": "2026-01", "devices": ["0011"]}, "devices"),
        ({"kind": "co2", "month": "2026-01", "devices": ["00" * 8] * 5000}, "devices"),
        ({"kind": "co2", "month": "2026-01", "tags": [1, 2]}, "tags"),
    ],
)
def test_bad_request_is_refused_by_field(db: Path, req: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as e:
        run_request(db, req, ReportSettings())
    assert e.value.key_path == field


def test_good_request_on_an_empty_database(db: Path) -> None:
    rep = run_request(db, {"kind": "legionella", "month": "2026-01"}, ReportSettings())
    assert rep["kind"] == "legionella" and rep["from"] == "2026-01-01" and rep["to"] == "2026-01-31"
    assert rep["devices"] == []
