"""Ingest rate of the real daemon with its web console polled every second beside the same
daemon unpolled (issue #19 must-show 4, target: within 5 %). Both runs have [web] configured
(token_file auth) and upstream disabled, so the outbox grows to N rows as during an outage;
only the poller differs. Alternating runs, loopback only, bounded (each run waits at most 120 s).

    .venv/bin/python -m hil.bench.web_ingest [--uplinks 100000] [--devices 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import socket
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import tomli_w

from gateway_agent.control import request
from hil.bench.ingest import send_paced
from hil.bench.meta import git_commit
from hil.daemonproc import DaemonProcess
from hil.lorawan_crypto import build_data_frame
from hil.ports import free_port, free_udp_port

TOKEN = "bench-console-token-0123456789abcdef0123"
PAYLOAD = b"\x01\x67\x00\xe1\x02\x68\x50"  # Cayenne LPP: temperature, humidity
WINDOW = 32  # datagrams in flight, PUSH_ACK-paced as in hil/bench/ingest.py


def setup(tmp: Path, n_uplinks: int, n_devices: int, per_dgram: int) -> tuple[Path, list[bytes]]:
    """A config with [sources] GWMP, [web] with a token, no upstream; and the datagrams."""
    keys = [(bytes.fromhex(f"26{i:06x}"), os.urandom(16), os.urandom(16)) for i in range(n_devices)]
    devices = tmp / "devices.toml"
    devices.write_text(
        tomli_w.dumps(
            {
                "device": [
                    {"dev_eui": f"70b3d57e{i:08x}", "class": "co2", "codec": "cayenne-lpp",
                     "dev_addr": a.hex(), "nwk_s_key": n.hex(), "app_s_key": s.hex()}
                    for i, (a, n, s) in enumerate(keys)
                ]
            }
        )
    )  # fmt: skip
    devices.chmod(0o600)
    token = tmp / "web.token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    rxpks = []
    for k in range(n_uplinks):
        addr, nwk, app = keys[k % n_devices]
        phy = build_data_frame(2, addr, k // n_devices, nwk, app, f_port=1, payload=PAYLOAD)
        rxpks.append(
            {"tmst": k, "freq": 868.1, "stat": 1, "modu": "LORA", "datr": "SF7BW125",
             "codr": "4/5", "rssi": -70, "lsnr": 7.5, "size": len(phy),
             "data": base64.b64encode(phy).decode()}
        )  # fmt: skip
    dgrams = [
        b"\x02\x00\x01\x00"
        + bytes.fromhex("b827ebfffe6c1a2b")
        + json.dumps({"rxpk": rxpks[i : i + per_dgram]}, separators=(",", ":")).encode()
        for i in range(0, n_uplinks, per_dgram)
    ]
    return token, dgrams


def config(tmp: Path, udp: int, web: int, token: Path) -> Path:
    cfg = tmp / "agent.toml"
    doc = {
        "agent": {"gateway_id": "bench", "state_dir": str(tmp / "state"),
                  "devices_file": str(tmp / "devices.toml"), "log_level": "WARNING",
                  "frame_queue": 200000},
        "sources": [{"type": "gwmp", "listen": f"127.0.0.1:{udp}"}],
        "upstream": {"enabled": False},
        "lorawan": {"dedup_window_ms": 200},
        "web": {"listen": f"127.0.0.1:{web}", "token_file": str(token)},
    }  # fmt: skip
    cfg.write_text(tomli_w.dumps(doc))
    return cfg


def poll(base: str, stop: threading.Event, out: list[float]) -> None:
    """GET /api/status and / with the token once a second, as an open console page does."""
    while not stop.is_set():
        t = time.perf_counter()
        for path in ("/api/status", "/"):
            req = urllib.request.Request(base + path)
            req.add_header("Authorization", f"Bearer {TOKEN}")
            with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback)
                assert r.status == 200
                r.read()
        out.append((time.perf_counter() - t) * 1000)
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))


def one_run(n_uplinks: int, n_devices: int, per_dgram: int, polled: bool) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ga-bench-web-ingest-"))
    udp, web = free_udp_port(), free_port()
    token, dgrams = setup(tmp, n_uplinks, n_devices, per_dgram)
    cfg = config(tmp, udp, web, token)
    control = tmp / "state" / "control.sock"
    daemon = DaemonProcess(cfg, control, tmp / "state" / "agent.db", tmp / "agent.log")
    stop, polls = threading.Event(), []  # type: ignore[var-annotated]
    poller = threading.Thread(target=poll, args=(f"http://127.0.0.1:{web}", stop, polls))
    try:
        daemon.start(timeout_s=30)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if polled:
            poller.start()
        t0 = time.perf_counter()
        send_paced(sock, dgrams, udp, WINDOW)
        done, deadline = 0, time.monotonic() + 120
        while time.monotonic() < deadline:
            done = int(request(control, "counters").get("readings_accepted", 0))
            if done >= n_uplinks:
                break
            time.sleep(0.1 if done < 0.95 * n_uplinks else 0.01)
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        if poller.is_alive():
            poller.join(timeout=15)
        daemon.stop(timeout_s=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "polled": polled,
        "committed": done,
        "seconds": round(elapsed, 3),
        "uplinks_per_s": round(done / elapsed),
        "polls": len(polls),
        "poll_ms_median": round(statistics.median(polls), 1) if polls else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--uplinks", type=int, default=100_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-datagram", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    runs = []
    for i in range(a.runs * 2):  # alternating: unpolled, polled, unpolled, ...
        r = one_run(a.uplinks, a.devices, a.per_datagram, polled=bool(i % 2))
        print(
            f"{'polled  ' if r['polled'] else 'unpolled'} {r['uplinks_per_s']} uplinks/s "
            f"({r['committed']}/{a.uplinks} in {r['seconds']} s, {r['polls']} polls, "
            f"poll median {r['poll_ms_median']} ms)",
            flush=True,
        )
        runs.append(r)
    base = statistics.median(r["uplinks_per_s"] for r in runs if not r["polled"])
    polled = statistics.median(r["uplinks_per_s"] for r in runs if r["polled"])
    ratio = round(polled / base, 3)
    print(f"median unpolled {base} uplinks/s, polled {polled} uplinks/s, ratio {ratio}")
    out = {
        "bench": "web_ingest",
        "commit": git_commit(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "uplinks": a.uplinks,
        "devices": a.devices,
        "web_configured": "both",
        "poll": "GET /api/status and / with a Bearer token, once a second",
        "runs": runs,
        "unpolled_uplinks_per_s_median": base,
        "polled_uplinks_per_s_median": polled,
        "ratio": ratio,
        "within_5pct": ratio >= 0.95,
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
