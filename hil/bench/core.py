"""LoRaWAN core throughput: parse_phy + verify_uplink per uplink vs the bare `cryptography` floor.

`python -m hil.bench.core [--uplinks N] [--devices D] [--repeat R]` prints JSON, then one line.
The floor does the same crypto with prebuilt key objects and nothing else: one CMAC over
B0 | msg and the AES-ECB keystream blocks per uplink.
"""

from __future__ import annotations

import argparse
import hmac
import json
import platform
import random
import time
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from gateway_agent.lorawan.frame import DataFrame, MType, build_data_frame, parse_phy
from gateway_agent.lorawan.session import DeviceSession, UplinkAccepted, verify_uplink
from hil.bench.meta import git_commit

MAX_GAP = 16384


def make_workload(
    n_uplinks: int, n_devices: int, seed: int = 1
) -> tuple[list[DeviceSession], list[tuple[bytes, int]]]:
    """ABP sessions and `n_uplinks` valid frames, round-robin over devices, counters ascending.

    Returns (sessions, [(phy, fcnt32)]). Counters start near 65 500 so the run crosses the
    16-bit wrap; payloads are 12-byte application data (one keystream block).
    """
    rng = random.Random(seed)
    sessions = []
    for i in range(n_devices):
        sessions.append(
            DeviceSession(
                dev_eui=(0x70B3D57E00000000 + i).to_bytes(8, "big"),
                dev_addr=(0x26000000 + i).to_bytes(4, "big"),
                nwk_s_key=rng.randbytes(16),
                app_s_key=rng.randbytes(16),
                fcnt_up=65_500 + rng.randrange(20) if i % 2 else None,
            )
        )
    counters = [s.fcnt_up + 1 if s.fcnt_up is not None else 0 for s in sessions]
    frames = []
    for k in range(n_uplinks):
        i = k % n_devices
        s = sessions[i]
        fcnt = counters[i]
        counters[i] += 1
        phy = build_data_frame(
            MType.UnconfirmedDataUp,
            s.dev_addr,
            fcnt,
            nwk_s_key=s.nwk_s_key,
            app_s_key=s.app_s_key,
            f_port=2,
            payload=rng.randbytes(12),
            adr=True,
        )
        frames.append((phy, fcnt))
    return sessions, frames


def run_core(sessions: list[DeviceSession], frames: list[tuple[bytes, int]]) -> float:
    """Seconds for the core path over all frames (the session table updates like the shell's)."""
    by_addr: dict[bytes, list[DeviceSession]] = {}
    for s in sessions:
        by_addr.setdefault(s.dev_addr, []).append(s)
    start = time.perf_counter()
    for phy, _ in frames:
        f = parse_phy(phy)
        assert isinstance(f, DataFrame)
        res = verify_uplink(f, by_addr.get(f.dev_addr, ()), MAX_GAP)
        if type(res) is not UplinkAccepted:
            raise RuntimeError(f"benchmark frame not accepted: {res}")
        by_addr[f.dev_addr] = [res.new_session]
    return time.perf_counter() - start


def run_floor(sessions: list[DeviceSession], frames: list[tuple[bytes, int]]) -> float:
    """Seconds for the bare crypto: CMAC(B0|msg) + compare + AES-ECB keystream, keys prebuilt."""
    keys: dict[bytes, tuple[Any, Any]] = {}
    for s in sessions:
        enc = Cipher(algorithms.AES(s.app_s_key), modes.ECB()).encryptor()  # noqa: S305
        keys[s.dev_addr[::-1]] = (CMAC(algorithms.AES(s.nwk_s_key)), enc)
    start = time.perf_counter()
    for phy, fcnt in frames:
        addr_le = phy[1:5]
        cmac_t, enc = keys[addr_le]
        msg = phy[:-4]
        fc = fcnt.to_bytes(4, "little")
        c = cmac_t.copy()
        c.update(b"\x49\x00\x00\x00\x00\x00" + addr_le + fc + b"\x00" + bytes((len(msg),)) + msg)
        if not hmac.compare_digest(c.finalize()[:4], phy[-4:]):
            raise RuntimeError("floor MIC mismatch")
        data = msg[9:]
        ks = enc.update(b"\x01\x00\x00\x00\x00\x00" + addr_le + fc + b"\x00\x01")
        bytes(a ^ b for a, b in zip(data, ks, strict=False))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--uplinks", type=int, default=20_000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5, help="best of R runs")
    args = ap.parse_args(argv)
    sessions, frames = make_workload(args.uplinks, args.devices)
    run_core(sessions, frames[: min(500, len(frames))])  # warm caches (key contexts, imports)
    core = min(run_core(sessions, frames) for _ in range(args.repeat))
    floor = min(run_floor(sessions, frames) for _ in range(args.repeat))
    n = len(frames)
    result = {
        "bench": "lorawan_core",
        "uplinks": n,
        "devices": args.devices,
        "core_uplinks_per_s": round(n / core),
        "floor_uplinks_per_s": round(n / floor),
        "ratio": round(floor / core, 3),
        "target_ratio": 0.3,
        "core_us_per_uplink": round(core / n * 1e6, 2),
        "floor_us_per_uplink": round(floor / n * 1e6, 2),
        "machine": {
            "platform": platform.platform(),
            "cpu": platform.machine(),
            "python": platform.python_version(),
        },
        "commit": git_commit() or "unknown",
    }
    print(json.dumps(result))
    print(
        f"core {result['core_uplinks_per_s']} uplinks/s, floor {result['floor_uplinks_per_s']}"
        f" uplinks/s, ratio {result['ratio']} (target >= 0.3)"
    )
    return result


if __name__ == "__main__":
    main()
