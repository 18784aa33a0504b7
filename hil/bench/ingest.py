"""GWMP ingest rate of the real daemon over loopback, beside the core and crypto-floor figures.

`python -m hil.bench.ingest [--uplinks N] [--devices D] [--per-datagram K] [--synchronous FULL]`
prints one JSON object and a human line. "Committed" means the daemon's `readings_accepted`
counter, which moves only after the SQLite transaction holding the readings committed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import tomli_w

from gateway_agent.control import request
from hil.bench.meta import git_commit
from hil.daemonproc import DaemonProcess
from hil.lorawan_crypto import build_data_frame
from hil.ports import free_udp_port


def send_paced(sock: socket.socket, datagrams: list[bytes], port: int, window: int = 32) -> None:
    """PUSH_DATA datagrams to 127.0.0.1:`port`, at most `window` awaiting their PUSH_ACK, so
    the kernel's UDP buffer never overflows; a lost ACK must not stall the benchmark."""
    acked = 0
    for sent, d in enumerate(datagrams):
        while sent - acked >= window:
            sock.settimeout(2.0)
            try:
                sock.recv(64)
                acked += 1
            except TimeoutError:
                acked = sent
        sock.sendto(d, ("127.0.0.1", port))


def _thread_cpu(pid: int) -> dict[str, float]:
    """User and system CPU seconds of a process: its main thread, and all others (the store
    thread, SQLite's fsyncs) together (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        name = "main" if tid == str(pid) else "other_threads"
        for kind, value in (("user", fields[11]), ("system", fields[12])):
            key = f"{name}_{kind}"
            out[key] = out.get(key, 0.0) + int(value) / tick
    return out


def run_ingest(
    n_uplinks: int, n_devices: int, per_datagram: int, synchronous: str
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="ga-bench-ingest-"))
    port = free_udp_port()
    keys = [(bytes.fromhex(f"26{i:06x}"), os.urandom(16), os.urandom(16)) for i in range(n_devices)]
    devices_doc = {
        "device": [
            {
                "dev_eui": f"70b3d57e{i:08x}",
                "class": "co2",
                "codec": "cayenne-lpp",
                "dev_addr": addr.hex(),
                "nwk_s_key": nwk.hex(),
                "app_s_key": app.hex(),
            }
            for i, (addr, nwk, app) in enumerate(keys)
        ]
    }
    devices = tmp / "devices.toml"
    devices.write_text(tomli_w.dumps(devices_doc))
    devices.chmod(0o600)
    cfg = tmp / "agent.toml"
    agent_doc = {
        "agent": {
            "gateway_id": "bench",
            "state_dir": str(tmp / "state"),
            "devices_file": str(devices),
            "log_level": "WARNING",
            "frame_queue": 200000,
        },
        "sources": [{"type": "gwmp", "listen": f"127.0.0.1:{port}"}],
        "upstream": {"enabled": False},
        "store": {"synchronous": synchronous},
        "lorawan": {"dedup_window_ms": 200},
    }
    cfg.write_text(tomli_w.dumps(agent_doc))
    # Frames: FCnt increasing per device, round-robin over devices.
    rxpks = []
    for k in range(n_uplinks):
        addr, nwk, app = keys[k % n_devices]
        phy = build_data_frame(
            2, addr, k // n_devices, nwk, app, f_port=1, payload=b"\x01\x67\x00\xe1\x02\x68\x50"
        )
        rxpks.append(
            {
                "tmst": k,
                "freq": 868.1,
                "stat": 1,
                "modu": "LORA",
                "datr": "SF7BW125",
                "codr": "4/5",
                "rssi": -70,
                "lsnr": 7.5,
                "size": len(phy),
                "data": base64.b64encode(phy).decode(),
            }
        )
    datagrams = [
        b"\x02\x00\x01\x00"
        + bytes.fromhex("b827ebfffe6c1a2b")
        + json.dumps({"rxpk": rxpks[i : i + per_datagram]}, separators=(",", ":")).encode()
        for i in range(0, n_uplinks, per_datagram)
    ]
    control = tmp / "state" / "control.sock"
    daemon = DaemonProcess(cfg, control, tmp / "state" / "agent.db", tmp / "agent.log")
    try:
        daemon.start(timeout_s=30)
        assert daemon.proc is not None
        pid = daemon.proc.pid
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

        def accepted() -> int:
            c = request(control, "counters")
            return int(c.get("readings_accepted", 0))

        cpu0 = _thread_cpu(pid)
        t0 = time.perf_counter()
        send_paced(sock, datagrams, port)
        done = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = accepted()
            if done >= n_uplinks:
                break
            # Each poll is a control-socket request the daemon's loop thread answers: 100 a
            # second cost it ~4 % of its time. Poll finely only near the end.
            time.sleep(0.1 if done < 0.95 * n_uplinks else 0.01)
        elapsed = time.perf_counter() - t0
        cpu1 = _thread_cpu(pid)
        counters = request(control, "counters")
    finally:
        daemon.stop(timeout_s=10)
    return {
        "uplinks": n_uplinks,
        "devices": n_devices,
        "rxpk_per_datagram": per_datagram,
        "synchronous": synchronous,
        "committed": done,
        "seconds": round(elapsed, 3),
        "committed_uplinks_per_s": round(done / elapsed),
        # CPU the daemon spent per committed uplink, by thread: robust to a busy machine
        # (a starved sender lowers the rate, not these), but not to a shared physical core.
        "daemon_cpu_us_per_uplink": {
            name: round((cpu1.get(name, 0.0) - cpu0.get(name, 0.0)) / max(done, 1) * 1e6, 1)
            for name in sorted(cpu1)
        },
        "dropped": {
            k: v for k, v in counters.items() if "dropped" in k or k.startswith("bad_input")
        },
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--uplinks", type=int, default=50_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--per-datagram", type=int, default=16)
    ap.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    ap.add_argument("--skip-core", action="store_true")
    a = ap.parse_args(argv)
    out: dict[str, Any] = {"bench": "ingest"}
    if not a.skip_core:
        from hil.bench import core

        c = core.main(["--uplinks", "20000"])
        out["core_uplinks_per_s"] = c["core_uplinks_per_s"]
        out["floor_uplinks_per_s"] = c["floor_uplinks_per_s"]
        out["core_vs_floor"] = c["ratio"]
    out["ingest"] = run_ingest(a.uplinks, a.devices, a.per_datagram, a.synchronous)
    out["machine"] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    out["commit"] = git_commit()
    print(json.dumps(out))
    i = out["ingest"]
    print(
        f"ingest {i['committed_uplinks_per_s']} uplinks/s committed (synchronous={i['synchronous']}, "
        f"{i['rxpk_per_datagram']} rxpk/datagram, {i['committed']}/{i['uplinks']} committed; "
        f"daemon CPU us/uplink {i['daemon_cpu_us_per_uplink']})"
        + (
            f"; core {out['core_uplinks_per_s']}/s vs floor {out['floor_uplinks_per_s']}/s "
            f"(ratio {out['core_vs_floor']})"
            if "core_uplinks_per_s" in out
            else ""
        )
    )
    return out


if __name__ == "__main__":
    main()
