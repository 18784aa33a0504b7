"""Ingest with a real SQLite store: the next batch fills while the previous one commits, and a
failed commit reloads state from the store without forgetting the batch that filled meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gateway_agent.config import read_config
from gateway_agent.ingest import Ingest
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.radio import RadioFrame, RxInfo
from gateway_agent.metrics import Counters
from gateway_agent.model import Device
from gateway_agent.secret import Secret
from gateway_agent.store import Store
from hil.lorawan_crypto import (
    build_data_frame,
    build_join_request,
    derive_session_keys,
    open_join_accept,
)
from tests.e2e.test_e2e_radio import ABP_ADDR, APP, APP_KEY, JOIN_EUI, NWK
from tests.e2e.test_e2e_radio import ABP_EUI as ABP_EUI_HEX
from tests.e2e.test_e2e_radio import DEV_EUI as OTAA_EUI

ABP_EUI = bytes.fromhex(ABP_EUI_HEX)
ADDR = bytes.fromhex(ABP_ADDR)
LPP = b"\x01\x67\x00\xe1"


def _make(tmp_path: Path, store_call: Callable[..., Any], commit_rows: int = 500) -> Ingest:
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(
        f'[agent]\ngateway_id = "t"\nstate_dir = "{tmp_path}"\n'
        f"[store]\ncommit_rows = {commit_rows}\ncommit_interval_ms = 50\n"
        "[upstream]\nenabled = false\n"
    )
    store = Store(tmp_path / "agent.db", "FULL")
    store.upsert_devices(
        [
            Device(
                dev_eui=ABP_EUI,
                name="abp",
                device_class="co2",
                codec="cayenne-lpp",
                dev_addr=ADDR,
                nwk_s_key=Secret(NWK),
                app_s_key=Secret(APP),
            ),
            Device(
                dev_eui=OTAA_EUI,
                name="otaa",
                device_class="co2",
                codec="cayenne-lpp",
                join_eui=JOIN_EUI,
                app_key=Secret(APP_KEY),
            ),
        ]
    )
    ing = Ingest(
        read_config(cfg_file),
        store,
        store_call,
        Counters(),
        lambda tx: True,
        lambda: None,
        can_downlink=lambda gateway_id: True,
    )
    ing.load()
    return ing


async def _direct(fn: Callable[..., Any], *a: Any) -> Any:
    return fn(*a)


def _group(phy: bytes, tmst: int = 1) -> FrameGroup:
    rx = RxInfo(
        gateway_id="b827ebfffe6c1a2b",
        rx_mono=time.monotonic(),
        rx_wall=time.time(),
        freq_hz=868_100_000,
        sf=7,
        bw_khz=125,
        code_rate="4/5",
        rssi_dbm=-80.0,
        snr_db=5.0,
        tmst=tmst,
    )
    return FrameGroup(phy, (rx,), time.monotonic())


def test_reload_keeps_the_counters_of_the_batch_still_open(tmp_path: Path) -> None:
    ing = _make(tmp_path, _direct)
    phy = build_data_frame(2, ADDR, 5, NWK, APP, f_port=1, payload=LPP)
    ing.handle_group(_group(phy))
    assert len(ing.batch.readings) == 1
    # A commit before this batch failed: state is reloaded from the store (FCnt unknown there).
    ing.load()
    ing._reapply(ing.batch)
    ing.handle_group(_group(phy))  # the same frame again: a replay, not a second reading
    assert len(ing.batch.readings) == 1
    assert ing.counters.get("uplink_retransmissions") == 1


def test_reload_keeps_a_join_of_the_batch_still_open(tmp_path: Path) -> None:
    ing = _make(tmp_path, _direct)
    ing.handle_group(_group(build_join_request(JOIN_EUI, OTAA_EUI, 77, APP_KEY)))
    assert len(ing.batch.sessions) == 1
    (tx, _) = ing.post.downlinks[0]
    ja = open_join_accept(tx.phy_payload, APP_KEY)
    nwk, app = derive_session_keys(APP_KEY, ja.join_nonce, ja.net_id, 77)
    ing.load()  # the store has no session for the device yet
    ing._reapply(ing.batch)
    ing.handle_group(_group(build_data_frame(2, ja.dev_addr, 0, nwk, app, f_port=1, payload=LPP)))
    assert [r[1] for r in ing.batch.readings] == [OTAA_EUI.hex()]


def test_batches_fill_while_the_previous_one_commits(tmp_path: Path) -> None:
    pool = ThreadPoolExecutor(max_workers=1)

    async def in_thread(fn: Callable[..., Any], *a: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *a)

    async def main() -> Ingest:
        ing = _make(tmp_path, in_thread, commit_rows=7)
        frames: asyncio.Queue[RadioFrame] = asyncio.Queue()
        stop = asyncio.Event()
        task = asyncio.create_task(ing.run(frames, stop))
        for fcnt in range(300):
            phy = build_data_frame(2, ADDR, fcnt, NWK, APP, f_port=1, payload=LPP)
            frames.put_nowait(RadioFrame(phy, _group(phy, fcnt).rx[0]))
            if fcnt % 25 == 0:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # past the dedup window
        stop.set()
        await asyncio.wait_for(task, 30)
        return ing

    ing = asyncio.run(main())
    pool.shutdown()
    rows = ing.store.db.execute("SELECT fcnt FROM readings ORDER BY rowid").fetchall()
    assert [r[0] for r in rows] == list(range(300))
    assert ing.counters.get("readings_accepted") == 300
    outbox = ing.store.db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert outbox == 300
    assert ing.store.device(ABP_EUI)[1]["fcnt_up"] == 299  # type: ignore[index]


def test_a_reloaded_config_reaches_the_rules(tmp_path: Path) -> None:
    """SIGHUP swaps `ingest.cfg`: the new config's rules judge the very next reading."""
    ing = _make(tmp_path, _direct)
    ing.handle_group(_group(build_data_frame(2, ADDR, 1, NWK, APP, f_port=1, payload=LPP)))
    assert not ing.batch.rule_state
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(
        cfg_file.read_text() + '[[rules]]\nname = "warm"\nkind = "threshold"\n'
        'measurement = "temperature_c"\nabove = 20.0\nclear = 19.0\nseverity = "warning"\n'
    )
    ing.cfg = read_config(cfg_file)
    ing.handle_group(_group(build_data_frame(2, ADDR, 2, NWK, APP, f_port=1, payload=LPP)))
    assert list(ing.batch.rule_state) == [("warm", ABP_EUI.hex())]
