"""Full disk (not the cap): the real daemon with its state dir on a small tmpfs, broker down,
uplinks at a fixed rate with alerts among them; then the broker comes back. Then kill -9 on the
full disk and start again (a crash loop under systemd if it exits).

`python -m hil.bench.diskfull [--mb 16] [--rate 300] [--seconds 40]` prints JSON, then one line.
Needs root (mount -t tmpfs -o size=...); tests/store/test_disk_full.py runs a short form.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.agentproc import Agent, Forwarder
from tests.durability_kit import HOT_RULE, Collector, fleet, frame, make_agent, persistent_broker


@contextlib.contextmanager
def small_fs(path: Path, mb: float) -> Iterator[Path]:
    """A tmpfs of `mb` MB mounted at `path` (root only); unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={int(mb * 1024 * 1024)},mode=0750", "tmpfs", path],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=False, capture_output=True)


def can_mount() -> bool:
    """True when a tmpfs can be mounted here (root, no seccomp/namespace refusal)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    d = Path(tempfile.mkdtemp(prefix="ga-mount-probe-"))
    try:
        with small_fs(d, 1):
            return True
    except (subprocess.CalledProcessError, OSError):
        return False
    finally:
        with contextlib.suppress(OSError):
            d.rmdir()


def fill(path: Path) -> int:
    """Fill the filesystem at `path` to the last byte with a filler file; returns its size."""
    n = 0
    fd = os.open(path / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        block = b"\0" * 65536
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    n += os.write(fd, block[:size])
                except OSError:
                    break
    finally:
        os.close(fd)
    return n


def hot(f: int, i: int) -> bool:
    """Frames that raise (and, one frame later, clear) the HOT rule: ~4 % of uplinks alert."""
    return (f + 7 * i) % 50 == 25


def send_paced(agent: Agent, devs: list[dict[str, str]], frames_per_dev: int, rate: int) -> int:
    """`rate` uplinks/s in datagrams of 10, fcnt-major over the fleet; returns uplinks sent."""
    fw = Forwarder(agent.udp_port)
    batch = []
    sent = 0
    t0 = time.monotonic()
    for f in range(frames_per_dev):
        for i, d in enumerate(devs):
            batch.append(frame(d, f, temp=30.0 if hot(f, i) else 21.0))
            if len(batch) == 10:
                fw.push_rxpk([fw.rxpk(p) for p in batch], wait_ack=False)
                sent += len(batch)
                batch = []
                ahead = t0 + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    if batch:
        fw.push_rxpk([fw.rxpk(p) for p in batch], wait_ack=False)
        sent += len(batch)
    fw.close()
    return sent


def settle(agent: Agent, sent: int, timeout_s: float = 30.0) -> dict[str, int]:
    """Wait until every uplink sent is accepted or refused (or nothing moves for 3 s)."""
    deadline = time.monotonic() + timeout_s
    last, still = -1, time.monotonic()
    c: dict[str, int] = {}
    while time.monotonic() < deadline:
        c = agent.counters()
        done = sum(v for k, v in c.items() if k.startswith(("readings_accepted", "readings_ref")))
        if done >= sent:
            break
        if done != last:
            last, still = done, time.monotonic()
        elif time.monotonic() - still > 3:
            break
        time.sleep(0.1)
    return c


def total(c: dict[str, int], prefix: str) -> int:
    return sum(v for k, v in c.items() if k.startswith(prefix))


def run_diskfull(
    tmp: Path, mb: float, rate: int, seconds: float, devices: int = 20
) -> dict[str, Any]:
    broker = persistent_broker(tmp)
    sub = Collector(broker.port, name="diskfull")
    broker.stop()  # upstream down for the whole fill
    devs = fleet(devices)
    agent = make_agent(
        tmp / "a",
        broker.port,
        devs,
        rules=[HOT_RULE],
        upstream={"backoff_initial_s": 0.2, "backoff_max_s": 0.5},
        store={"commit_interval_ms": 200},
    )
    out: dict[str, Any] = {"fs_mb": mb, "rate": rate, "seconds": seconds}
    frames_per_dev = int(rate * seconds) // devices
    alerts_raised = sum(
        2 for f in range(frames_per_dev) for i in range(devices) if hot(f, i)
    )  # raise + clear
    try:
        with small_fs(agent.state, mb):
            agent.start()
            t0 = time.monotonic()
            sent = send_paced(agent, devs, frames_per_dev, rate)
            out["send_s"] = round(time.monotonic() - t0, 1)
            c = settle(agent, sent)
            out.update(
                uplinks=sent,
                accepted=total(c, "readings_accepted"),
                refused=total(c, "readings_refused"),
                alerts_expected=alerts_raised,
                alerts_raised=total(c, "alerts"),
                daemon_alive=agent.alive,
            )
            time.sleep(1.5)  # one rule tick + a housekeeping chance to record drops
            # 2. kill -9 on the full disk, fill the last bytes, start again.
            agent.kill()
            out["state_files"] = {p.name: p.stat().st_size for p in agent.state.iterdir()}
            out["filler_bytes"] = fill(agent.state)
            exits = 0
            for _ in range(3):
                try:
                    agent.start(timeout_s=20)
                    break
                except RuntimeError as e:
                    exits += 1
                    out["start_error"] = str(e)[-400:]
            out["restart_exits"] = exits
            (agent.state / "filler").unlink(missing_ok=True)
            if agent.alive:
                broker.start()
                sub.wait(lambda: agent.ask("outbox")["by_kind"].get("alert", 0) == 0, 60)
                sub.wait(lambda: agent.ask("outbox")["depth"] == 0, 120)
                time.sleep(2)
                ev = sub.bodies("/events")
                out["alerts_delivered"] = len({a["id"] for a in sub.bodies("/alert")})
                out["readings_delivered"] = len({m["id"] for m in sub.bodies("/up")})
                out["events"] = sorted({e["event"] for e in ev})
                dropped: dict[str, int] = {}
                for e in ev:
                    if e["event"] == "data_dropped":
                        for k in ("history", "unsent_readings", "unsent_events", "unsent_alerts"):
                            dropped[k] = dropped.get(k, 0) + int(e.get(k, 0))
                out["dropped_reported"] = dropped
                out["refused_reported"] = sum(
                    int(e.get("count", 0)) for e in ev if e["event"] == "readings_refused"
                )
                out["log_lines"] = [
                    ln
                    for ln in agent.log().splitlines()
                    if any(w in ln for w in ("disk_full", "space", "commit_failed", "reserve"))
                ][:8]
                agent.stop()
    finally:
        agent.kill()
        sub.close()
        broker.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=16)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=40)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        r = run_diskfull(Path(d), a.mb, a.rate, a.seconds)
    print(json.dumps(r, indent=1))
    print(
        f"{r['uplinks']} uplinks at {a.rate}/s on a {a.mb:g} MB filesystem, broker down:"
        f" {r['refused']} refused, alerts {r.get('alerts_delivered')}/{r['alerts_raised']} delivered,"
        f" dropped {r.get('dropped_reported')}, restart exits {r['restart_exits']}"
    )


if __name__ == "__main__":
    main()
