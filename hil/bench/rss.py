"""The daemon's memory with and without the optional parts a small gateway may not need: the
relay (chirpstack-api: protobuf, grpcio) and the HTTP outputs (aiohttp). Each configuration runs
the real daemon, takes 2,000 uplinks over GWMP, then its VmRSS and VmHWM are read; runs
alternate. Everything on loopback; the destinations are closed ports (the outputs back off),
so what is measured is the code loaded and the lanes filling, not a server's pace.

    .venv/bin/python -m hil.bench.rss [--runs 2] [--uplinks 2000]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

from gateway_agent.control import request
from hil.bench.ingest import send_paced
from hil.bench.meta import git_commit
from hil.bench.web_ingest import setup
from hil.daemonproc import DaemonProcess
from hil.ports import free_port, free_udp_port

CONFIGS = ("plain", "relay", "outputs", "relay+outputs")


def _vm(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm


def _config(tmp: Path, kind: str, udp: int) -> Path:
    closed = free_port()  # nothing listens: every destination is down
    doc: dict[str, Any] = {
        "agent": {"gateway_id": "bench", "state_dir": str(tmp / "state"),
                  "devices_file": str(tmp / "devices.toml"), "log_level": "WARNING"},
        "sources": [{"type": "gwmp", "listen": f"127.0.0.1:{udp}"}],
        "upstream": {"host": "127.0.0.1", "port": closed},
    }  # fmt: skip
    if "relay" in kind:
        doc["relay"] = {"kind": "chirpstack", "topic_prefix": "eu868"}
    if "outputs" in kind:
        doc["outputs"] = [
            {"name": "tsdb", "type": "influxdb", "url": f"http://127.0.0.1:{closed}",
             "database": "iot"},
            {"name": "hook", "type": "webhook", "url": f"http://127.0.0.1:{closed}/x"},
        ]  # fmt: skip
    cfg = tmp / "agent.toml"
    cfg.write_text(tomli_w.dumps(doc))
    return cfg


def one_run(kind: str, n_uplinks: int, n_devices: int = 200) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ga-bench-rss-"))
    udp = free_udp_port()
    _, dgrams = setup(tmp, n_uplinks, n_devices, 10)  # the devices file and the datagrams
    cfg = _config(tmp, kind, udp)
    control = tmp / "state" / "control.sock"
    daemon = DaemonProcess(cfg, control, tmp / "state" / "agent.db", tmp / "agent.log")
    try:
        daemon.start(timeout_s=30)
        assert daemon.proc is not None
        idle = _vm(daemon.proc.pid)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        send_paced(sock, dgrams, udp)
        sock.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if int(request(control, "counters").get("readings_accepted", 0)) >= n_uplinks:
                break
            time.sleep(0.1)
        time.sleep(2.0)
        rss, hwm = _vm(daemon.proc.pid)
        accepted = int(request(control, "counters").get("readings_accepted", 0))
    finally:
        daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"config": kind, "idle_rss_mib": round(idle[0], 1), "rss_mib": round(rss, 1),
            "hwm_mib": round(hwm, 1), "accepted": accepted}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--uplinks", type=int, default=2000)
    a = ap.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in CONFIGS}
    for _ in range(a.runs):
        for kind in CONFIGS:
            runs[kind].append(one_run(kind, a.uplinks))
    out = {
        "bench": "rss",
        "commit": git_commit(),
        "machine": platform.machine(),
        "uplinks": a.uplinks,
        "configs": {
            k: {
                "idle_rss_mib": statistics.median(r["idle_rss_mib"] for r in v),
                "rss_mib": statistics.median(r["rss_mib"] for r in v),
                "hwm_mib": statistics.median(r["hwm_mib"] for r in v),
                "accepted": min(r["accepted"] for r in v),
            }
            for k, v in runs.items()
        },
    }
    print(json.dumps(out))
    base = out["configs"]["plain"]["rss_mib"]
    for k, v in out["configs"].items():
        print(
            f"{k:14} idle {v['idle_rss_mib']:5.1f} MiB, after {a.uplinks} uplinks "
            f"{v['rss_mib']:5.1f} MiB ({v['rss_mib'] - base:+.1f}), peak {v['hwm_mib']:5.1f} MiB,"
            f" accepted {v['accepted']}"
        )


if __name__ == "__main__":
    main()
