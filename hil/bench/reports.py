"""Benchmark: every report kind over a month of 500 devices at 15-minute intervals (~1.4 M
readings) in a temporary SQLite file made by the real Store (schema, migrations, commit_batch).

    python -m hil.bench.reports [--devices 500] [--interval-min 15] [--keep DIR]

Each kind runs in a fresh child process (so peak RSS is its own): once over its own class
(a quarter of the fleet), once over every device (all ~1.4 M rows streamed), and once over
half the month, to show memory does not grow with the month. Prints one line per run and a
JSON line with the machine and the git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gateway_agent.model import Device
from gateway_agent.reports import KINDS, Selector, date_period, month_period, run_report
from gateway_agent.store import Batch, Store
from hil.bench.meta import git_commit

CLASSES = ("legionella", "co2", "bin", "gully")
MONTH = "2026-01"


def _device(i: int) -> Device:
    cls = CLASSES[i % 4]
    settings: dict[str, object] = {}
    if cls == "legionella":
        settings = {"outlet": ("hot", "cold", "calorifier")[i % 3], "little_used": i % 5 == 0}
    elif cls == "co2":
        settings = {"ventilation": ("natural", "mechanical", "hybrid")[i % 3]}
    elif cls == "gully":
        settings = {"warning_level_mm": 300}
    return Device(dev_eui=(0x70B3D57ED0000000 + i).to_bytes(8, "big"), name=f"{cls} {i}",
                  device_class=cls, tags=(f"site-{i % 20}",), settings=settings)  # fmt: skip


def _measurements(cls: str, i: int, t: float, rnd: random.Random) -> dict[str, float]:
    hour = (t % 86400) / 3600
    if cls == "legionella":
        base = 60.0 if i % 3 == 2 else (14.0 if i % 3 == 1 else 25.0)
        if i % 3 == 0 and 10 <= hour < 11:
            base = 56.0
        return {"temperature_c": round(base + rnd.uniform(-1, 1), 2), "battery_v": 3.6}
    if cls == "co2":
        occ = 9 <= hour < 15.5
        return {"co2_ppm": round((1200 if occ else 450) + rnd.uniform(-300, 900 if occ else 50)),
                "temperature_c": 20.5, "humidity_pct": 45.0, "battery_v": 3.3}  # fmt: skip
    if cls == "bin":
        fill = (t / 3600 * 0.6 + i * 7) % 100
        return {
            "distance_mm": round(1200 - fill * 10.5),
            "fill_pct": round(fill, 1),
            "battery_pct": 90,
        }
    level = 50 + (t - 1767225600) / 86400 * (2 if i % 8 == 3 else 0) + rnd.uniform(0, 5)
    return {"distance_mm": round(3000 - level), "level_mm": round(level, 1), "battery_pct": 80}


def build(path: Path, n_devices: int, interval_min: float) -> int:
    period = month_period(MONTH)
    devices = [_device(i) for i in range(n_devices)]
    rnd = random.Random(18)
    store = Store(path, synchronous="OFF")
    store.upsert_devices(devices)
    n = 0
    batch = Batch()
    t = period.start
    step = interval_min * 60
    while t < period.end:  # arrival order: devices interleave in the table, as in the field
        for i, d in enumerate(devices):
            ti = t + (i * 7.3) % step
            n += 1
            m = _measurements(d.device_class, i, ti, rnd)
            batch.readings.append((f"bench:{d.dev_eui.hex()}:{n}", d.dev_eui.hex(), n, 85, ti, 1,
                                   b"\x01\x02\x03\x04\x05\x06\x07\x08", json.dumps(m), "{}", None,
                                   -95.0, 6.5, 1))  # fmt: skip
        if len(batch.readings) >= 20000:
            store.commit_batch(batch)
            batch = Batch()
        t += step
    if batch.readings:
        store.commit_batch(batch)
    store.close()
    return n


def one(db: str, kind: str, scope: str, half: bool) -> None:
    period = date_period("2026-01-01", "2026-01-15") if half else month_period(MONTH)
    t0 = time.perf_counter()
    rep = run_report(db, kind, period, Selector(any_class=scope == "all"))
    dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"kind": kind, "scope": scope, "days": period.n_days, "devices": len(rep["devices"]),
                      "seconds": round(dt, 2), "peak_rss_mb": round(rss_mb, 1),
                      "summary": rep["summary"]}))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--interval-min", type=float, default=15.0)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the database in this directory")
    ap.add_argument(
        "--one", nargs=4, metavar=("DB", "KIND", "SCOPE", "HALF"), help=argparse.SUPPRESS
    )
    a = ap.parse_args()
    if a.one:
        one(a.one[0], a.one[1], a.one[2], a.one[3] == "1")
        return
    tmp = None
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
        db = a.keep / "reports-bench.db"
    else:
        tmp = tempfile.TemporaryDirectory()
        db = Path(tmp.name) / "reports-bench.db"
    if not db.exists():
        t0 = time.perf_counter()
        n = build(db, a.devices, a.interval_min)
        print(f"built {n} readings for {a.devices} devices in {time.perf_counter() - t0:.1f} s, "
              f"{os.path.getsize(db) / 1e6:.0f} MB")  # fmt: skip
    runs = []
    for kind in KINDS:
        for scope, half in (("class", False), ("all", False), ("all", True)):
            out = subprocess.run([sys.executable, "-m", "hil.bench.reports", "--one", str(db), kind, scope,
                                  "1" if half else "0"], capture_output=True, text=True, check=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(r)
            print(f"{kind:<10} {scope:<5} {r['days']:>2} days {r['devices']:>3} devices "
                  f"{r['seconds']:>6.2f} s  peak RSS {r['peak_rss_mb']:.1f} MB")  # fmt: skip
    with open("/proc/cpuinfo") as f:
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
            platform.machine(),
        )
    print(json.dumps({"bench": "reports", "commit": git_commit() or "unknown", "machine": platform.machine(), "cpu": cpu,
                      "cpus": os.cpu_count(), "python": platform.python_version(),
                      "sqlite": __import__("sqlite3").sqlite_version, "devices": a.devices,
                      "interval_min": a.interval_min, "runs": runs}))  # fmt: skip
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
