"""Durability with the real daemon and mosquitto: broker outage mid-stream, SIGKILL crash loop,
power-cut damage to the DB/WAL while stopped (invariants 1-3)."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

from tests.agentproc import Agent
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
        assert len(ids) == 10_000
        assert {(m["devEui"], m["fCnt"]) for m in ups} == {
            (d["eui"], f) for f in range(500) for d in devs
        }
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


def _enable_upstream(agent: Agent, port: int) -> None:
    from tests.agentproc import write_toml

    agent.cfg["upstream"].update(enabled=True, port=port)
    write_toml(agent.config_path, agent.cfg)


def test_corrupt_history_page_salvages_unsent_queue_and_fcnt(tmp_path: Path) -> None:
    """#16 item 5: a damaged page in the readings history fails the start check. The file is
    moved aside, but first every readable unsent outbox row, the devices' FCnt state and the
    rest go into the fresh file: all unsent readings arrive, a replayed frame stays refused,
    and `database_recovered` says what was salvaged."""
    broker = persistent_broker(tmp_path)
    devs = fleet(2)
    agent = make_agent(tmp_path / "a", None, devs, store={"commit_interval_ms": 20})
    sub = Collector(broker.port, name="salvage")
    db = agent.state / "agent.db"
    try:
        agent.start()
        frames = [frame(d, f) for f in range(300) for d in devs]
        send_all(agent, frames)
        assert wait_accepted(agent, 600) == 600
        assert agent.stop() == 0
        with sqlite3.connect(db) as c:
            unsent = {r[0] for r in c.execute("SELECT msg_id FROM outbox WHERE kind='up'")}
            pages = [
                r[0]
                for r in c.execute(
                    "SELECT pageno FROM dbstat WHERE name='readings' AND pagetype='leaf'"
                )
            ]
            page_size = c.execute("PRAGMA page_size").fetchone()[0]
        assert len(unsent) == 600 and len(pages) > 4
        with db.open("r+b") as f:  # a leaf of the history in the middle: header and cells
            f.seek(page_size * (pages[len(pages) // 2] - 1))
            f.write(b"\x0d\x00\x00\xff\xff" + b"\xa5" * (page_size - 5))
        try:
            with sqlite3.connect(db) as c:
                assert c.execute("PRAGMA quick_check").fetchone()[0] != "ok"
        except sqlite3.DatabaseError:
            pass  # or the check itself fails: either way the start check refuses the file
        _enable_upstream(agent, broker.port)
        agent.start()
        assert sub.wait(lambda: unsent <= {m["id"] for m in sub.bodies("/up")}, 30), (
            "every unsent reading of the damaged file is delivered"
        )
        ev = [e for e in sub.bodies("/events") if e.get("action") == "moved_aside"]
        assert ev and ev[0]["salvaged"]["outbox"] == 600, ev
        assert ev[0]["salvaged"]["devices"] == 2
        assert Path(ev[0]["movedTo"][0]).exists()
        # Replay protection survived: an old frame is refused, the next FCnt accepted.
        base = agent.counter("readings_accepted")
        send_all(agent, [frame(devs[0], 299), frame(devs[0], 300)], pace=10)
        time.sleep(1.0)
        assert agent.counter("readings_accepted") == base + 1
        assert agent.stop() == 0
    finally:
        agent.kill()
        sub.close()
        broker.stop()


def test_bad_byte_sets_rows_aside_never_fatal(tmp_path: Path) -> None:
    """#16 item 4: text that is not UTF-8 in an outbox row, a history row and a rule state
    passes quick_check. The daemon starts, sets those rows aside one by one (counted, reported
    in `data_dropped`), delivers the rest, and the CLI still reads the history."""
    import json
    import subprocess
    import sys

    from tests.agentproc import REPO

    broker = persistent_broker(tmp_path)
    devs = fleet(2)
    agent = make_agent(tmp_path / "a", None, devs, store={"commit_interval_ms": 20})
    sub = Collector(broker.port, name="badbyte")
    db = agent.state / "agent.db"
    try:
        agent.start()
        send_all(agent, [frame(d, f) for f in range(50) for d in devs])
        assert wait_accepted(agent, 100) == 100
        assert agent.stop() == 0
        with sqlite3.connect(db) as c:
            ids = [r[0] for r in c.execute("SELECT msg_id FROM outbox ORDER BY seq")]
            bad = ids[10]
            c.execute("UPDATE outbox SET body = CAST(X'7b22ff22' AS TEXT) WHERE msg_id = ?", (bad,))
            c.execute(
                "UPDATE readings SET measurements = CAST(X'7bff7d' AS TEXT) WHERE id = ?",
                (ids[20],),
            )
            c.execute("INSERT INTO rule_state VALUES ('hot', CAST(X'ff00' AS TEXT), 'raised')")
            assert c.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        r = subprocess.run(
            [sys.executable, "-m", "gateway_agent", "-c", str(agent.config_path)]
            + ["readings", "show", "--json", "--limit", "1000"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)) == 99 and "damaged_rows" in r.stderr
        _enable_upstream(agent, broker.port)
        agent.start()
        want = set(ids) - {bad}
        assert sub.wait(lambda: want <= {m["id"] for m in sub.bodies("/up")}, 30)
        assert sub.wait(
            lambda: any(
                e["event"] == "data_dropped" and "unreadable" in e["reasons"]
                for e in sub.bodies("/events")
            ),
            20,
        ), "the row set aside is reported"
        assert agent.alive, "never fatal"
        assert agent.stop() == 0
        agent.start()  # and the next start is as good
        assert agent.alive
        assert agent.stop() == 0
    finally:
        agent.kill()
        sub.close()
        broker.stop()
