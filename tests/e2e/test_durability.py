"""Durability with the real daemon and mosquitto: broker outage mid-stream, SIGKILL crash loop,
power-cut damage to the DB/WAL while stopped (invariants 1-3)."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

from tests.durability_kit import (
    Collector,
    db_query,
    fleet,
    frame,
    make_agent,
    persistent_broker,
    send_all,
    wait_accepted,
)

INFLIGHT = 32


def test_outage_10k_every_reading_in_order(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    devs = fleet(20)
    agent = make_agent(
        tmp_path / "a",
        broker.port,
        devs,
        upstream={"inflight": INFLIGHT, "backoff_initial_s": 0.2, "backoff_max_s": 1.0},
        store={"commit_interval_ms": 50, "synchronous": "NORMAL"},
    )
    sub = Collector(broker.port)
    try:
        agent.start()
        frames = [frame(d, f) for f in range(500) for d in devs]
        send_all(agent, frames[:4000])
        broker.stop()  # mid-stream: rows are in flight when the broker goes
        send_all(agent, frames[4000:])
        assert wait_accepted(agent, 10_000, 90) == 10_000
        assert agent.ask("outbox")["depth"] > 0, "the backlog waited for the broker"
        broker.start()
        assert sub.wait(lambda: len({m["id"] for m in sub.bodies("/up")}) >= 10_000, 90)
        ups = sub.bodies("/up")
        ids = {m["id"] for m in ups}
        assert ids == {f"test-gw:{d['eui']}:{f}" for f in range(500) for d in devs}
        dups = len(ups) - len(ids)
        assert dups <= INFLIGHT * 4, f"duplicates only within the in-flight window: {dups}"
        for d in devs:
            seq = [m["fCnt"] for m in ups if m["devEui"] == d["eui"]]
            high = -1
            for f in seq:
                # A repeat may only be a resend of the window that was in flight at the cut.
                assert f > high or high - f < INFLIGHT, (d["eui"], f, high)
                high = max(high, f)
            first = list(dict.fromkeys(seq))
            assert first == sorted(first), "per device, FCnt order"
        assert agent.stop() == 0
    finally:
        agent.kill()
        sub.close()
        broker.stop()


def test_crash_loop_20_sigkills_lose_nothing_committed(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    devs = fleet(10)
    agent = make_agent(
        tmp_path / "a",
        broker.port,
        devs,
        store={"commit_interval_ms": 20},
        upstream={"inflight": 16},
    )
    sub = Collector(broker.port)
    rng = random.Random(7)
    committed: set[str] = set()
    fcnt = 0
    try:
        for cycle in range(20):
            agent.start()
            n = rng.randrange(40, 200)
            frames = [frame(d, f) for f in range(fcnt, fcnt + n // len(devs) + 1) for d in devs]
            fcnt += n // len(devs) + 1
            if cycle % 2 == 0:  # during ingest: kill while datagrams are still arriving
                half = len(frames) // 2
                send_all(agent, frames[:half])
                from tests.agentproc import Forwarder

                fw = Forwarder(agent.udp_port)
                for i in range(half, len(frames), 10):
                    fw.push_rxpk([fw.rxpk(p) for p in frames[i : i + 10]], wait_ack=False)
                fw.close()
                time.sleep(rng.uniform(0.0, 0.15))
            else:  # during drain: broker holds everything back, then kill mid-publish
                send_all(agent, frames)
                time.sleep(rng.uniform(0.0, 0.3))
            assert agent.proc is not None
            agent.proc.send_signal(signal.SIGKILL)
            agent.proc.wait()
            agent.proc = None
            db = agent.state / "agent.db"
            with sqlite3.connect(db, timeout=10) as c:
                assert c.execute("PRAGMA quick_check").fetchone()[0] == "ok", cycle
                ids = {r[0] for r in c.execute("SELECT id FROM readings")}
            assert committed <= ids, f"cycle {cycle}: committed readings vanished"
            committed |= ids
        agent.start()
        assert sub.wait(lambda: committed <= {m["id"] for m in sub.bodies("/up")}, 30), (
            "every committed reading reaches the broker"
        )
        assert db_query(agent, "PRAGMA quick_check")[0][0] == "ok"
        assert len(committed) > 500
        assert agent.stop() == 0
    finally:
        agent.kill()
        sub.close()
        broker.stop()


def test_power_cut_damage_is_recovered_and_reported(tmp_path: Path) -> None:
    broker = persistent_broker(tmp_path)
    devs = fleet(2)
    agent = make_agent(tmp_path / "a", None, devs, store={"commit_interval_ms": 20})
    sub = Collector(broker.port)
    db = agent.state / "agent.db"
    try:
        # 1. A torn WAL (power cut mid-append): SQLite drops the torn tail, the agent says so.
        agent.start()
        send_all(agent, [frame(d, f) for f in range(50) for d in devs])
        assert wait_accepted(agent, 100) == 100
        agent.kill()
        wal = Path(f"{db}-wal")
        assert wal.stat().st_size > 4096, "a kill -9 leaves the WAL behind"
        with wal.open("r+b") as f:
            f.truncate(wal.stat().st_size - 1000)
        agent.cfg["upstream"].update(enabled=True, port=broker.port)
        from tests.agentproc import write_toml

        write_toml(agent.config_path, agent.cfg)
        agent.start()
        assert sub.wait(
            lambda: any(e["event"] == "database_recovered" for e in sub.bodies("/events")), 15
        )
        ev = [e for e in sub.bodies("/events") if e["event"] == "database_recovered"][0]
        assert ev["action"] == "wal_replayed" and ev["walTorn"] is True
        assert db_query(agent, "PRAGMA quick_check")[0][0] == "ok"
        agent.stop()
        # 2. Garbage over the main file: moved aside with a timestamp, fresh DB, event upstream.
        with db.open("r+b") as f:
            f.seek(0)
            f.write(b"\xde\xad\xbe\xef" * 2048)
        agent.start()
        assert sub.wait(
            lambda: any(e.get("action") == "moved_aside" for e in sub.bodies("/events")), 15
        )
        ev = [e for e in sub.bodies("/events") if e.get("action") == "moved_aside"][0]
        assert ev["movedTo"] and ".corrupt-" in ev["movedTo"][0]
        assert Path(ev["movedTo"][0]).exists()
        assert db_query(agent, "PRAGMA quick_check")[0][0] == "ok"
        # 3. A page in the middle corrupted (quick_check fails): same path, never a crash loop.
        agent.stop()
        send_pages = db.stat().st_size // 4096
        with db.open("r+b") as f:
            f.seek(4096 * max(1, send_pages // 2) + 100)
            f.write(b"\xff" * 3000)
        agent.start()
        assert agent.proc is not None and agent.proc.poll() is None
        assert sub.wait(
            lambda: sum(1 for e in sub.bodies("/events") if e.get("action") == "moved_aside") >= 1,
            10,
        )
        assert agent.stop() == 0
    finally:
        agent.kill()
        sub.close()
        broker.stop()
