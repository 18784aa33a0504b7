"""All SQLite access runs on the store thread (issue #15): the ingest's joins, answers (FCntDown,
queue marks) and requeues run with a connection that refuses any other thread. And a FCntDown is
never reused: a failed commit transmits nothing, a restart continues above every one sent."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.errors import DiskFullError
from gateway_agent.ingest import Ingest
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.store import Store
from hil.lorawan_crypto import (
    build_data_frame,
    build_join_request,
    derive_session_keys,
    open_join_accept,
)
from tests.ingest.test_ingest_pipeline import (
    ABP_EUI,
    ADDR,
    APP,
    APP_KEY,
    JOIN_EUI,
    LPP,
    NWK,
    OTAA_EUI,
    _group,
    _make,
)

CONFIRMED_UP = 4


class StoreThreadOnly:
    """A sqlite3 connection that raises when used from any thread but `owner`."""

    def __init__(self, conn: Any, owner: int) -> None:
        self._conn = conn
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        if threading.get_ident() != self._owner:
            raise AssertionError(
                f"SQLite ({name}) used on thread {threading.current_thread().name}, "
                "not the store thread"
            )
        return getattr(self._conn, name)


def guard(store: Store, owner: int) -> None:
    """From now on, only thread `owner` may touch the store's connection."""
    store._file.conn = store.db = StoreThreadOnly(store.db, owner)  # type: ignore[assignment]


class StoreThread:
    """One worker thread, as the daemon's store thread (store/thread.py); `fail` makes the next
    commit fail as a full disk would."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self.ident = self.pool.submit(threading.get_ident).result()
        self.fail = 0

    async def call(self, fn: Callable[..., Any], *a: Any) -> Any:
        if self.fail and getattr(fn, "__name__", "") == "commit_batch":
            self.fail -= 1

            def failing(*_: Any) -> None:
                raise DiskFullError("database or disk is full")

            fn = failing
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *a)


@pytest.fixture
def st() -> Iterator[StoreThread]:
    t = StoreThread()
    yield t
    t.pool.shutdown()


def _guarded(tmp_path: Path, st: StoreThread) -> tuple[Ingest, list[DownlinkTx]]:
    ing = _make(tmp_path, st.call)  # opened and loaded on this thread, before the guard
    guard(ing.store, st.ident)
    sent: list[DownlinkTx] = []
    ing.downlinks.send_downlink = lambda tx: sent.append(tx) or True  # type: ignore[func-returns-value]
    return ing, sent


def _fcnt16(tx: DownlinkTx) -> int:
    return int.from_bytes(tx.phy_payload[6:8], "little")


def test_joins_answers_and_requeues_never_touch_sqlite_off_the_store_thread(
    tmp_path: Path, st: StoreThread
) -> None:
    async def main() -> tuple[Ingest, list[DownlinkTx]]:
        ing, sent = _guarded(tmp_path, st)
        await st.call(ing.load)  # a reload, as after a failed commit or SIGHUP
        # A join: used DevNonces and the JoinNonce come from memory; accepted after the commit.
        ing.handle_group(_group(build_join_request(JOIN_EUI, OTAA_EUI, 77, APP_KEY)))
        await ing.flush()
        (ja_tx,) = sent
        ja = open_join_accept(ja_tx.phy_payload, APP_KEY)
        # The same DevNonce again (committed now): refused from memory.
        ing.handle_group(_group(build_join_request(JOIN_EUI, OTAA_EUI, 77, APP_KEY)))
        assert ing.counters.get("bad_input", reason="join_dev_nonce_reused") == 1
        # A confirmed uplink of the joined device: its ACK takes FCntDown 0 from memory.
        nwk, app = derive_session_keys(APP_KEY, ja.join_nonce, ja.net_id, 77)
        up = build_data_frame(CONFIRMED_UP, ja.dev_addr, 0, nwk, app, f_port=1, payload=LPP)
        ing.handle_group(_group(up))
        await ing.flush()
        # Its retransmission is ACKed again, through a commit too (FCntDown 1).
        ing.handle_group(_group(up))
        await ing.flush()
        assert [_fcnt16(t) for t in sent[1:]] == [0, 1]
        # A queued application downlink rides in the next answer; no route: queued again.
        seq = await st.call(ing.store.queue_downlink, ABP_EUI, 10, b"\xca\xfe")
        ing.downlinks.enqueue(ABP_EUI, seq, 10, b"\xca\xfe")
        ing.downlinks.send_downlink = lambda tx: False
        ing.handle_group(_group(build_data_frame(2, ADDR, 1, NWK, APP, f_port=1, payload=LPP)))
        await ing.flush()
        assert [q["seq"] for q in ing.downlinks.queued[ABP_EUI]] == [seq]
        await ing.flush()  # the requeue's batch
        assert [r["seq"] for r in await st.call(ing.store.pending_downlinks)] == [seq]
        # Sent this time; then the gateway's TX_ACK refuses RX1 and RX2 (the GWMP callback).
        ing.downlinks.send_downlink = lambda tx: sent.append(tx) or True  # type: ignore[func-returns-value]
        ing.handle_group(_group(build_data_frame(2, ADDR, 2, NWK, APP, f_port=1, payload=LPP)))
        await ing.flush()
        assert await st.call(ing.store.pending_downlinks) == []
        data = sent[-1]
        assert data.queue_seq == seq
        ing.downlinks.refused(data, "TOO_LATE")
        ing.downlinks.refused(sent[-1], "TOO_LATE")
        assert [q["seq"] for q in ing.downlinks.queued[ABP_EUI]] == [seq]
        await ing.flush()
        assert [r["seq"] for r in await st.call(ing.store.pending_downlinks)] == [seq]
        return ing, sent

    ing, sent = asyncio.run(main())
    assert ing.counters.get("joins_accepted") == 1
    assert ing.counters.get("downlink_requeued") == 2
    ing.store.db = ing.store._file.conn = ing.store.db._conn  # type: ignore[attr-defined]
    (_, st_otaa) = ing.store.device(OTAA_EUI)  # type: ignore[misc]
    assert st_otaa["fcnt_down"] == 2 and st_otaa["join_nonce"] == 1
    assert ing.store.used_dev_nonces(OTAA_EUI) == {77}


def test_the_run_loop_joins_and_answers_on_the_store_thread_only(
    tmp_path: Path, st: StoreThread
) -> None:
    async def main() -> tuple[Ingest, list[DownlinkTx]]:
        ing, sent = _guarded(tmp_path, st)
        frames: asyncio.Queue[RadioFrame] = asyncio.Queue()
        stop = asyncio.Event()
        task = asyncio.create_task(ing.run(frames, stop))
        for i, phy in enumerate(
            [
                build_join_request(JOIN_EUI, OTAA_EUI, 5, APP_KEY),
                build_data_frame(CONFIRMED_UP, ADDR, 1, NWK, APP, f_port=1, payload=LPP),
            ]
        ):
            frames.put_nowait(RadioFrame(phy, _group(phy, i).rx[0]))
        await asyncio.sleep(0.5)  # past the dedup window and the commit
        stop.set()
        await asyncio.wait_for(task, 30)
        return ing, sent

    ing, sent = asyncio.run(main())
    assert sorted(t.purpose for t in sent) == ["ack", "join_accept"]
    assert ing.counters.get("joins_accepted") == 1


def test_a_fcnt_down_is_never_reused_after_a_failed_commit_or_a_crash(
    tmp_path: Path, st: StoreThread
) -> None:
    def uplink(fcnt: int) -> Any:
        return _group(build_data_frame(CONFIRMED_UP, ADDR, fcnt, NWK, APP, f_port=1, payload=LPP))

    async def run(ing: Ingest, fcnts: list[int], fail: bool = False) -> None:
        for fcnt in fcnts:
            st.fail = int(fail)
            ing.handle_group(uplink(fcnt))
            await ing.flush()

    async def main() -> list[DownlinkTx]:
        ing, sent = _guarded(tmp_path, st)
        await run(ing, [1])
        assert [_fcnt16(t) for t in sent] == [0]
        await run(ing, [2], fail=True)  # the answer's FCntDown is not stored: nothing goes out
        assert [_fcnt16(t) for t in sent] == [0]
        assert ing.counters.get("readings_refused", reason="disk_full") == 1
        await run(ing, [2, 3])
        # "kill -9": no flush, no close; the next process loads what the disk holds.
        again = Ingest(
            ing.cfg, Store(tmp_path / "agent.db", "FULL"), st.call, ing.counters, sent.append, ing.on_commit,
            can_downlink=lambda gateway_id: True,
        )  # fmt: skip
        await st.call(again.load)
        guard(again.store, st.ident)
        again.downlinks.send_downlink = ing.downlinks.send_downlink
        await run(again, [4, 5])
        # A commit fails, then the process dies before any other commit.
        await run(again, [6], fail=True)
        third = Ingest(
            ing.cfg, Store(tmp_path / "agent.db", "FULL"), st.call, ing.counters, sent.append, ing.on_commit,
            can_downlink=lambda gateway_id: True,
        )  # fmt: skip
        await st.call(third.load)
        guard(third.store, st.ident)
        third.downlinks.send_downlink = ing.downlinks.send_downlink
        await run(third, [7])
        return sent

    sent = asyncio.run(main())
    fcnts = [_fcnt16(t) for t in sent]
    assert len(fcnts) == 6 and len(set(fcnts)) == 6, fcnts
    assert fcnts == sorted(fcnts), "each transmitted FCntDown above every earlier one"


def test_join_nonces_stay_in_memory_and_small() -> None:
    """3,000 OTAA devices with 20 joins each: the used DevNonces cost 2 bytes each in memory."""
    import sys

    from gateway_agent.ingest.nonces import JoinNonces
    from gateway_agent.model import Device

    devs = [
        (
            Device(
                dev_eui=i.to_bytes(8, "big"),
                name="",
                device_class="co2",
                codec="cayenne-lpp",
                join_eui=JOIN_EUI,
            ),
            {"join_nonce": 20},
        )
        for i in range(3000)
    ]
    nonces = {d.dev_eui.hex(): list(range(1000, 1020)) for d, _ in devs}
    n = JoinNonces()
    n.load(devs, nonces)
    size = sys.getsizeof(n.used) + sum(sys.getsizeof(a) for a in n.used.values())
    assert size < 1_000_000, size
    assert n.used_by(devs[0][0].dev_eui, []) == set(range(1000, 1020))
    assert n.next_join_nonce(devs[0][0].dev_eui, []) == 21


def test_the_guard_catches_sqlite_on_the_wrong_thread(tmp_path: Path, st: StoreThread) -> None:
    ing, _ = _guarded(tmp_path, st)
    with pytest.raises(AssertionError, match="not the store thread"):
        ing.store.bump_fcnt_down(ABP_EUI)
