"""The event loop's worst stall while the daemon handles a burst of OTAA joins beside live traffic.

`python -m hil.bench.joins [--joins 100] [--devices 3000] [--rounds 3]` runs the real daemon
in this process (its own event loop), sends a stream of data uplinks over loopback GWMP so group
commits (with fsync) keep the store thread busy, then a burst of join-requests from distinct OTAA
devices. A probe task on the daemon's loop sleeps 1 ms at a time and records how late it wakes:
any SQLite call made on the loop thread (instead of the store thread) shows up as a stall,
including the wait for the store thread's commit on the shared connection. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import platform
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway_agent.config import read_config
from gateway_agent.daemon import Daemon
from hil.bench.meta import git_commit
from hil.lorawan_crypto import build_data_frame, build_join_request
from hil.ports import free_udp_port

GATEWAY = bytes.fromhex("b827ebfffe6c1a2b")


def _push(rxpk_phys: list[bytes], tmst: int) -> bytes:
    rxpk = [
        {
            "tmst": tmst + i,
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
        for i, phy in enumerate(rxpk_phys)
    ]
    token = os.urandom(2)
    return b"\x02" + token + b"\x00" + GATEWAY + json.dumps({"rxpk": rxpk}).encode()


def _setup(tmp: Path, port: int, n_otaa: int, n_abp: int) -> tuple[Path, list[Any], list[Any]]:
    otaa = [(bytes.fromhex(f"70b3d57e1{i:07x}"), os.urandom(16)) for i in range(n_otaa)]
    abp = [
        (
            bytes.fromhex(f"70b3d57e2{i:07x}"),
            bytes.fromhex(f"26{i:06x}"),
            os.urandom(16),
            os.urandom(16),
        )
        for i in range(n_abp)
    ]
    lines: list[str] = []
    for eui, key in otaa:
        lines += ["[[device]]", f'dev_eui = "{eui.hex()}"', 'class = "co2"', 'codec = "cayenne-lpp"',
                  'join_eui = "0000000000000001"', f'app_key = "{key.hex()}"', ""]  # fmt: skip
    for eui, addr, nwk, app in abp:
        lines += ["[[device]]", f'dev_eui = "{eui.hex()}"', 'class = "co2"', 'codec = "cayenne-lpp"',
                  f'dev_addr = "{addr.hex()}"', f'nwk_s_key = "{nwk.hex()}"', f'app_s_key = "{app.hex()}"', ""]  # fmt: skip
    devices = tmp / "devices.toml"
    devices.write_text("\n".join(lines))
    devices.chmod(0o600)
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[agent]\ngateway_id = "bench"\nstate_dir = "{tmp / "state"}"\ndevices_file = "{devices}"\n'
        f'log_level = "ERROR"\n[[sources]]\ntype = "gwmp"\nlisten = "127.0.0.1:{port}"\n'
        f"[upstream]\nenabled = false\n[lorawan]\ndedup_window_ms = 200\n"
    )
    return cfg, otaa, abp


async def _round(
    cfg_path: Path, port: int, otaa: list[Any], abp: list[Any], n_joins: int, nonce0: int
) -> dict[str, Any]:
    cfg = read_config(cfg_path)
    daemon = Daemon(cfg)
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    phase = {"name": "warmup"}
    stalls: dict[str, float] = {}

    async def probe() -> None:
        while True:
            t = loop.time()
            await asyncio.sleep(0.001)
            late = loop.time() - t - 0.001
            lags.append(late)
            stalls[phase["name"]] = max(stalls.get(phase["name"], 0.0), late)

    async def traffic() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            await asyncio.sleep(2.0)  # the daemon is up
            fcnt = nonce0 * 1000
            # Live traffic: 4 uplinks every 20 ms (200/s), so commits run all the time.
            for tick in range(150):
                phys = []
                for k in range(4):
                    eui, addr, nwk, app = abp[(tick * 4 + k) % len(abp)]
                    phys.append(
                        build_data_frame(
                            2, addr, fcnt + tick, nwk, app, f_port=1, payload=b"\x01\x67\x00\xe1"
                        )
                    )
                sock.sendto(_push(phys, tick * 10), ("127.0.0.1", port))
                if tick == 50:
                    phase["name"] = "joins"
                    for i in range(n_joins):
                        eui, key = otaa[i % len(otaa)]
                        jr = build_join_request(
                            bytes.fromhex("0000000000000001"), eui, nonce0 + i, key
                        )
                        sock.sendto(_push([jr], 10_000_000 + i), ("127.0.0.1", port))
                if tick == 100:
                    phase["name"] = "after"
                await asyncio.sleep(0.02)
            await asyncio.sleep(1.0)
        finally:
            sock.close()
            os.kill(os.getpid(), signal.SIGTERM)

    probe_task = asyncio.ensure_future(probe())
    traffic_task = asyncio.ensure_future(traffic())
    try:
        await daemon.run()
    finally:
        probe_task.cancel()
        traffic_task.cancel()
    joins = int(daemon.counters.get("joins_accepted")) if hasattr(daemon.counters, "get") else None
    return {"stall_ms": {k: round(v * 1000, 2) for k, v in stalls.items()}, "joins_accepted": joins}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--joins", type=int, default=100)
    ap.add_argument("--devices", type=int, default=3000, help="OTAA devices in the devices file")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    tmp = Path(tempfile.mkdtemp(prefix="ga-bench-joins-"))
    port = free_udp_port()
    cfg, otaa, abp = _setup(tmp, port, a.devices, 200)
    rounds = []
    for r in range(a.rounds):
        t0 = time.perf_counter()
        out = asyncio.run(_round(cfg, port, otaa, abp, a.joins, 1 + r * a.joins))
        out["seconds"] = round(time.perf_counter() - t0, 1)
        rounds.append(out)
    worst = max(x["stall_ms"].get("joins", 0.0) for x in rounds)
    result = {
        "bench": "joins",
        "joins": a.joins,
        "otaa_devices": a.devices,
        "rounds": rounds,
        "worst_stall_during_joins_ms": worst,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "commit": git_commit(),
    }
    print(json.dumps(result))
    print(f"worst event-loop stall during {a.joins} joins: {worst} ms (rounds: "
          + ", ".join(str(x["stall_ms"].get("joins")) for x in rounds) + ")")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
