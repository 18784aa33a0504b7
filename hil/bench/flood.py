"""Flood: hostile/malformed GWMP datagrams at a high rate mixed with a few valid uplinks/s, against
the real daemon. Prints valid uplinks accepted, RSS growth and log lines per error kind.

`python -m hil.bench.flood [--seconds 60] [--rate 10000] [--valid 5]` prints JSON, then one line.
tests/e2e/test_flood.py runs the same function for 10 s and asserts the same properties.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.agentproc import Agent, Forwarder
from tests.durability_kit import device_table, fleet, frame

EUI = bytes.fromhex("b827ebfffe6c1a2b")


def hostile_datagrams(rng: random.Random, valid_phy: bytes) -> list[bytes]:
    """A mix of every kind of garbage a radio side or an attacker can send to UDP 1700."""
    hdr = b"\x02\x12\x34\x00" + EUI
    rxpk = {
        "tmst": 1,
        "freq": 868.1,
        "chan": 0,
        "rfch": 0,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF7BW125",
        "codr": "4/5",
        "rssi": -70,
        "lsnr": 8.0,
        "size": 0,
        "data": "",
    }
    out = [
        b"",
        b"\x00",
        rng.randbytes(3),
        rng.randbytes(12),
        b"\x09" + rng.randbytes(40),  # unknown protocol version
        b"\x02\x00\x01\x7f" + EUI,  # unknown identifier
        hdr,  # PUSH_DATA without JSON
        hdr + b"{not json",
        hdr + b"[1,2,3]",
        hdr + json.dumps({"rxpk": "nope"}).encode(),
        hdr + json.dumps({"rxpk": [{"data": "!!!"}]}).encode(),
        hdr + json.dumps({"rxpk": [dict(rxpk, data="AAAA", size=3)]}).encode(),
        hdr + b'{"rxpk":[' + b'{"a":' * 200 + b"1" + b"}" * 200 + b"]}",  # deep nesting
        hdr + json.dumps({"stat": {"rxnb": "x"}}).encode(),
        rng.randbytes(1400),
    ]
    for _ in range(20):  # well-formed frames with garbage PHY: bad MIC / unknown DevAddr
        phy = bytes([0x40]) + rng.randbytes(rng.randrange(8, 40))
        d = dict(rxpk, data=base64.b64encode(phy).decode(), size=len(phy))
        out.append(hdr + json.dumps({"rxpk": [d]}).encode())
    d = dict(rxpk, data=base64.b64encode(valid_phy).decode(), size=len(valid_phy))
    out.append(hdr + json.dumps({"rxpk": [d]}).encode())  # a replay of an accepted frame
    return out


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_flood(tmp: Path, seconds: float, rate: int, valid_per_s: int) -> dict[str, Any]:
    devs = fleet(4)
    agent = Agent(
        tmp, None, [device_table(d) for d in devs], extra={"store": {"commit_interval_ms": 50}}
    )
    agent.start()
    assert agent.proc is not None
    pid = agent.proc.pid
    rng = random.Random(1)
    fw = Forwarder(agent.udp_port)
    garbage = hostile_datagrams(rng, frame(devs[0], 0))
    fw.push(frame(devs[0], 0))  # the frame the replays repeat
    time.sleep(1.0)
    rss0 = rss_kb(pid)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    dest = ("127.0.0.1", agent.udp_port)
    log_start = len(agent.log())
    sent = valid = 0
    fcnt = 1
    t0 = time.monotonic()
    next_valid = t0
    slice_s = 0.01
    while (now := time.monotonic()) - t0 < seconds:
        target = int((now - t0 + slice_s) * rate)
        while sent < target:
            sock.sendto(garbage[sent % len(garbage)], dest)
            sent += 1
        if now >= next_valid:
            d = devs[valid % len(devs)]
            fw.push(frame(d, fcnt), wait_ack=False)
            valid += 1
            if valid % len(devs) == 0:
                fcnt += 1
            next_valid += 1.0 / valid_per_s
        time.sleep(max(0.0, slice_s - (time.monotonic() - now)))
    elapsed = time.monotonic() - t0
    time.sleep(1.5)
    rss1 = rss_kb(pid)
    accepted = agent.counter("readings_accepted") - 1
    counters = agent.counters()
    log = agent.log()[log_start:]
    agent.stop()
    sock.close()
    fw.close()
    kinds: Counter[str] = Counter()
    for line in log.splitlines():
        if line.startswith(("WARNING", "ERROR")):
            ev = line.split(": ", 1)[-1].split(" ")[0]
            reason = re.search(r"reason=(\S+)", line)
            kinds[f"{ev}:{reason.group(1) if reason else ''}"] += 1
    windows = max(1, int(elapsed // 10) + 1)
    return {
        "seconds": round(elapsed, 1),
        "hostile_sent": sent,
        "hostile_per_s": round(sent / elapsed),
        "valid_sent": valid,
        "valid_accepted": accepted,
        "rss_kb_start": rss0,
        "rss_growth_kb": rss1 - rss0,
        "log_lines_by_kind": dict(kinds),
        "max_lines_per_kind": max(kinds.values(), default=0),
        "allowed_lines_per_kind": windows,
        "frames_dropped": sum(v for k, v in counters.items() if "drop" in k),
        "bad_input": sum(v for k, v in counters.items() if k.startswith("bad_input")),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--valid", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = run_flood(Path(d), a.seconds, a.rate, a.valid)
    out["pid"] = os.getpid()
    print(json.dumps(out))
    print(
        f"flood {out['hostile_per_s']}/s hostile for {out['seconds']}s: valid "
        f"{out['valid_accepted']}/{out['valid_sent']} accepted, RSS +{out['rss_growth_kb']} kB, "
        f"max {out['max_lines_per_kind']} log lines per kind (allowed {out['allowed_lines_per_kind']})"
    )


if __name__ == "__main__":
    main()
