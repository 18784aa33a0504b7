"""`plot`: the pure chart (properties), and the command on readings seeded into a real SQLite
file, offline (reads the DB) and online (through the running daemon's control socket)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.cli import chart, main
from gateway_agent.model import Device
from gateway_agent.secret import Secret
from gateway_agent.store import Batch, Store
from tests.agentproc import Agent

EUI = "70b3d57ed0000001"
OTHER = "70b3d57ed0000002"
DEV = {
    "dev_eui": EUI,
    "name": "P7",
    "class": "co2",
    "codec": "cayenne-lpp",
    "dev_addr": "26011bda",
    "nwk_s_key": "000102030405060708090a0b0c0d0e0f",
    "app_s_key": "101112131415161718191a1b1c1d1e1f",
}

finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.floats(0, 1e4), finite), min_size=1, max_size=300), st.integers(1, 120)
)
def test_bucket_keeps_every_point_and_the_range(pts: list[tuple[float, float]], width: int) -> None:
    t0, t1 = min(t for t, _ in pts), max(t for t, _ in pts)
    cols = chart.bucket(pts, t0, t1, width)
    assert len(cols) == width
    vals = [v for v in cols if v is not None]
    assert vals
    lo, hi = min(v for _, v in pts), max(v for _, v in pts)
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))
    assert all(lo - tol <= v <= hi + tol for v in vals)  # means stay within the data


@settings(max_examples=200)
@given(st.lists(st.none() | finite, min_size=1, max_size=200), st.integers(1, 20))
def test_bars_shape(values: list[float | None], height: int) -> None:
    lo, hi = chart.value_range(values)
    rows = chart.bars(values, height, lo, hi)
    assert len(rows) == height
    assert all(len(r) == len(values) for r in rows)
    for i, v in enumerate(values):
        column = "".join(r[i] for r in rows)
        if v is None:
            assert column.strip() == ""
        else:
            assert column[-1] != " "  # every value is visible, the minimum included
    assert len(chart.sparkline(values)) == len(values)


def test_bars_order_and_extremes() -> None:
    rows = chart.bars([0.0, 5.0, 10.0], 4, 0.0, 10.0)
    assert [r[2] for r in rows] == ["█"] * 4  # max fills the column
    assert rows[-1][0] == "▁" and all(r[0] == " " for r in rows[:-1])  # min shows one eighth
    assert chart.sparkline([1, 2, 3, None, 8]) == "▁▂▃ █"


def test_plot_frame() -> None:
    now = 1_800_000_000.0
    pts = [(now + i * 60, float(400 + i)) for i in range(30)]
    lines = chart.plot(pts, 60, 6)
    assert len(lines) == 6 + 2
    assert all(len(line) == 60 for line in lines[:7])
    assert lines[0].lstrip().startswith("429 ┤") and lines[5].lstrip().startswith("400 ┤")
    assert lines[3].lstrip().startswith("414.5 ┤")
    assert chart.plot([], 60, 6) == ["(no data)"]


def seed(db: Path, n: int = 48) -> list[tuple[float, float]]:
    """n hourly CO2 readings for EUI (+ humidity), one for OTHER; committed like ingest does."""
    s = Store(db)
    s.upsert_device(
        Device(
            dev_eui=bytes.fromhex(EUI),
            device_class="co2",
            dev_addr=bytes.fromhex("26011bda"),
            nwk_s_key=Secret(bytes(16)),
            app_s_key=Secret(bytes(16)),
        )
    )
    now = time.time()
    b = Batch()
    series = []
    for i in range(n):
        t = now - (n - i) * 1800
        co2 = 420.0 + 30 * (i % 12)
        series.append((t, co2))
        m = json.dumps({"co2_ppm": co2, "humidity_pct": 40 + i % 5})
        b.readings.append((f"gw:{EUI}:{i}", EUI, i, 1, t, 1, b"\x01", m, "{}", None, -70.0, 8.0, 1))
    b.readings.append(
        (
            f"gw:{OTHER}:0",
            OTHER,
            0,
            1,
            now - 60,
            1,
            b"\x01",
            '{"co2_ppm": 9999}',
            "{}",
            None,
            -1,
            1,
            1,
        )
    )
    s.commit_batch(b)
    s.close()
    return series


def invoke(config: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, ["-c", str(config), "plot", *args], catch_exceptions=False)
    return r.exit_code, r.output


def test_plot_offline_from_the_database(tmp_path: Path) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[DEV])
    series = seed(a.state / "agent.db")
    code, out = invoke(
        a.config_path, "--device", EUI, "--measurement", "co2_ppm", "--since", "2d", "--json"
    )
    assert code == 0, out
    doc = json.loads(out)
    assert doc["dev_eui"] == EUI and doc["measurement"] == "co2_ppm"
    assert [(p["time"], p["value"]) for p in doc["series"]] == series
    assert doc["count"] == 48 and doc["min"] == 420.0 and doc["max"] == 750.0
    assert doc["last"] == series[-1][1]

    code, out = invoke(a.config_path, "--device", EUI, "-m", "co2_ppm", "--since", "3h", "--json")
    assert json.loads(out)["count"] == 5  # --since trims: readings every 30 min

    code, out = invoke(
        a.config_path, "--device", EUI, "-m", "co2_ppm", "--since", "2d", "--width", "70"
    )
    assert code == 0, out
    assert f"{EUI} co2_ppm" in out and "48 points, min 420, max 750" in out
    assert "█" in out and "┤" in out and "750" in out

    code, out = invoke(a.config_path, "--device", EUI, "-m", "co2_ppm", "--spark", "--since", "2d")
    assert code == 0 and "co2_ppm" in out and any(c in out for c in "▁▂▃▄▅▆▇")


def test_plot_errors(tmp_path: Path) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[DEV])
    seed(a.state / "agent.db")
    code, out = invoke(a.config_path, "--device", EUI, "--since", "2d")
    assert code == 2 and "co2_ppm, humidity_pct" in out  # two measurements: choose one
    code, out = invoke(a.config_path, "--device", OTHER, "--since", "2d", "--json")
    assert code == 0 and json.loads(out)["series"][0]["value"] == 9999  # only one: the default
    code, out = invoke(a.config_path, "--device", EUI, "-m", "nope", "--since", "2d")
    assert code == 1 and "no nope readings" in out and "co2_ppm" in out
    code, out = invoke(a.config_path, "--device", "12", "-m", "co2_ppm")
    assert code == 2  # usage: not a DevEUI
    code, out = invoke(a.config_path, "--device", EUI, "-m", "co2_ppm", "--since", "yesterday")
    assert code == 2


def test_plot_online_through_the_daemon(tmp_path: Path) -> None:
    a = Agent(tmp_path, broker_port=None, devices=[DEV])
    series = seed(a.state / "agent.db")
    a.start()
    try:
        code, out = invoke(
            a.config_path, "--device", EUI, "-m", "co2_ppm", "--since", "2d", "--json"
        )
        assert code == 0, out
        assert [(p["time"], p["value"]) for p in json.loads(out)["series"]] == series
        code, out = invoke(a.config_path, "--device", EUI, "-m", "humidity_pct", "--since", "2d")
        assert code == 0 and "humidity_pct" in out and "█" in out
    finally:
        assert a.stop() == 0, a.log()
