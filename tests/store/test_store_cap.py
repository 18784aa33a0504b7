"""Disk cap and disk full with the real daemon: the DB stays under `max_db_mb`, unsent alerts
survive, every drop is reported upstream once the link is back; ENOSPC refuses, never lies."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.agentproc import REPO
from tests.durability_kit import (
    HOT_RULE,
    Collector,
    db_query,
    fleet,
    frame,
    make_agent,
    persistent_broker,
    send_all,
    wait_accepted,
)


def db_bytes(state: Path) -> int:
    return sum(
        (state / f"agent.db{s}").stat().st_size
        for s in ("", "-wal")
        if (state / f"agent.db{s}").exists()
    )


def test_tiny_cap_keeps_alerts_and_reports_drops(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    port = broker.port
    # Subscribed before the outage (persistent session): the agent reconnects within a second of
    # the broker's restart and must not publish before anyone listens.
    sub = Collector(port, name="cap")
    broker.stop()  # upstream down for the whole fill
    devs = fleet(5)
    cap_mb = 2.0
    agent = make_agent(
        tmp_path / "a",
        port,
        devs,
        store={"max_db_mb": cap_mb, "commit_rows": 20},
        rules=[HOT_RULE],
    )
    try:
        agent.start()
        frames = []
        hot = set()
        for f in range(800):
            for i, d in enumerate(devs):
                t = 21.0
                if f % 100 == 50 and i == 0:  # ~8 raise/clear pairs, spread across the fill
                    t = 30.0
                    hot.add(f)
                frames.append(frame(d, f, temp=t))
        peak = [0]
        done = threading.Event()

        def sample() -> None:  # DB + WAL size every 5 ms while the fill runs
            while not done.is_set():
                with contextlib.suppress(OSError):
                    peak[0] = max(peak[0], db_bytes(agent.state))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        send_all(agent, frames, pace=400)
        assert wait_accepted(agent, 4000) == 4000, "ingest goes on at the cap"
        time.sleep(0.5)
        done.set()
        sampler.join()
        peak = peak[0]
        assert peak <= cap_mb * 1024 * 1024, f"DB + WAL peaked at {peak} bytes"
        alerts = db_query(agent, "SELECT msg_id FROM outbox WHERE kind='alert'")
        raised = agent.counter("alerts")
        assert raised >= 2 and len(alerts) == raised, "every unsent alert survives the cap"
        dropped_ups = 4000 - db_query(agent, "SELECT count(*) FROM outbox WHERE kind='up'")[0][0]
        assert dropped_ups > 1000, "the cap really bit"
        # The drops are reported (counter, log line, `data_dropped` row) within a rule tick.
        deadline = time.monotonic() + 10
        while agent.counter("dropped") == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert agent.counter("dropped") > 0
        broker.start()
        assert sub.wait(lambda: len(sub.bodies("/alert")) >= raised, 20)
        assert sub.wait(
            lambda: sum(e.get("unsent_readings", 0) for e in sub.bodies("/events")) >= dropped_ups,
            20,
        ), "the drops are reported upstream after reconnection"
        ev = [e for e in sub.bodies("/events") if e["event"] == "data_dropped"]
        assert ev and all("disk_cap" in e["reasons"] for e in ev)
        assert {a["id"] for a in sub.bodies("/alert")} == {a[0] for a in alerts}
        assert agent.stop() == 0
    finally:
        sub.close()
        agent.kill()
        broker.stop()


def _limit_fsize(limit: int) -> None:
    # Ignored signals survive exec: a write past the limit then fails with EFBIG instead of
    # killing the daemon with SIGXFSZ, the same path as ENOSPC for SQLite (a failed write).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_filesystem_full_refuses_then_resumes(tmp_path: Path) -> None:
    """ENOSPC emulated with RLIMIT_FSIZE on the daemon (EFBIG on write), raised again with
    prlimit(2) to emulate space coming back. No root tricks, no tmpfs mount."""
    broker = persistent_broker(tmp_path)
    devs = fleet(4)
    agent = make_agent(
        tmp_path / "a", broker.port, devs, rules=[HOT_RULE], store={"commit_interval_ms": 20}
    )
    sub = Collector(broker.port, name="full")
    agent.start()  # only to create the DB and config; restarted below under the limit
    agent.stop()
    size = db_bytes(agent.state)
    agent.log_path.write_bytes(b"")  # the log is a file too: keep it under the limit
    agent.proc = subprocess.Popen(
        [sys.executable, "-m", "gateway_agent", "run", "--config", str(agent.config_path)],
        stdout=subprocess.DEVNULL,
        stderr=open(agent.log_path, "ab"),  # noqa: SIM115
        cwd=REPO,
        preexec_fn=lambda: _limit_fsize(size + 96 * 1024),  # noqa: PLW1509
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                agent.ask("ping")
                break
            except Exception:
                time.sleep(0.1)
        frames = [frame(d, f, temp=30.0 if f == 150 else 21.0) for f in range(300) for d in devs]
        send_all(agent, frames[:400], pace=100_000)
        time.sleep(3)
        c = agent.counters()
        accepted = sum(v for k, v in c.items() if k.startswith("readings_accepted"))
        refused = sum(v for k, v in c.items() if k.startswith("readings_refused"))
        assert refused > 0, "the full filesystem refused commits"
        assert accepted + refused == 400, "every reading is either committed or refused"
        # Accepted means committed: each one reaches the broker (the history copies may have
        # been shed to make room, counted, as at the cap).
        assert sub.wait(lambda: len({m["id"] for m in sub.bodies("/up")}) >= accepted, 10), (
            "accepted means committed: nothing silently lost"
        )
        send_all(agent, frames[400:800], pace=100_000)  # includes the hot reading (fcnt 150)
        assert sub.wait(lambda: len(sub.bodies("/alert")) >= 1, 10), "alerts still go out live"
        # Space comes back.
        assert agent.proc is not None
        resource.prlimit(agent.proc.pid, resource.RLIMIT_FSIZE, (-1, -1))
        t0 = time.monotonic()
        send_all(agent, frames[800:], pace=100_000)
        assert wait_accepted(agent, accepted + 400, 10) >= accepted + 400
        assert time.monotonic() - t0 < 10, "commits resume within seconds of space returning"
        assert sub.wait(
            lambda: any(e["event"] == "readings_refused" for e in sub.bodies("/events")), 30
        ), "the refusals are reported upstream"
        assert db_query(agent, "PRAGMA quick_check")[0][0] == "ok"
        assert agent.stop() == 0
    finally:
        agent.kill()
        sub.close()
        broker.stop()
        os.environ.pop("_unused", None)
