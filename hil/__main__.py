"""`python -m hil run SCENARIO [--report FILE] [--live] [--workdir DIR]`; `python -m hil list`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hil.scenario import SCENARIO_DIR, ScenarioError, read_scenario


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hil", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a scenario against the real daemon")
    r.add_argument("scenario", help="a name from hil/scenarios/ or a path to a TOML file")
    r.add_argument("--report", type=Path, help="write the JSON report here")
    r.add_argument("--live", action="store_true", help="print readings and alerts as they arrive")
    r.add_argument("--workdir", type=Path, help="keep state, logs and configs here")
    sub.add_parser("list", help="list the shipped scenarios")
    a = ap.parse_args(argv)
    if a.cmd == "list":
        for p in sorted(SCENARIO_DIR.glob("*.toml")):
            scn = read_scenario(str(p))
            print(f"{p.stem:<16} {scn.devices:>6} devices  {scn.description}")
        return 0
    try:
        scn = read_scenario(a.scenario)
        from hil.fleetrun import check_spec, fleet_spec

        spec = fleet_spec(a.scenario)  # [fleet_run]: several agents (hil/fleetrun.py)
        if spec is not None:
            check_spec(scn, spec)
    except ScenarioError as e:
        print(f"hil: {e}", file=sys.stderr)
        return 2
    if spec is not None:
        from hil.fleetrun import run_fleet_sync

        report = run_fleet_sync(scn, spec, a.workdir, live=a.live)
        if a.report:
            a.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        return 0 if report["verdict"] == "pass" else 1
    from hil.runner import run_sync

    if a.live or scn.live:
        print(
            f"hil: {scn.name}: {scn.devices} devices, {scn.duration_s:.0f} s simulated at x{scn.accel:g}"
        )
    report = run_sync(scn, a.workdir, live=a.live)
    if a.report:
        a.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return 0 if report["verdict"] == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
