"""Passive mode in the ingest (issue #17), with a real SQLite store: no join-accept, no ACK, MAC
answer, ADR or queued downlink; FCnt gaps of frames other gateways heard; sessions fetched from
the central server land like a join, survive a reload, and free the frames that waited for them.
The daemon-level tests (real processes, GWMP over UDP, the stand-in API over gRPC) are in
test_passive_api.py."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from gateway_agent.config import read_config
from gateway_agent.ingest import Ingest
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.lorawan.sessionid import reading_id, session_id
from gateway_agent.metrics import Counters
from gateway_agent.model import Device
from gateway_agent.secret import Secret
from gateway_agent.store import Store
from gateway_agent.store.devices import session_source
from hil.lorawan_crypto import build_data_frame, build_join_request

APP_KEY = bytes.fromhex("5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e")
JOIN_EUI = bytes.fromhex("70b3d57ed0001234")
OTAA_EUI = bytes.fromhex("0004a30b001c0530")
ABP_EUI = bytes.fromhex("70b3d57ed0000001")
ABP_ADDR = bytes.fromhex("260b3c5a")
NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
# The OTAA device's session as the central server made it (this agent never saw the join).
CS_ADDR = bytes.fromhex("01a2b3c4")
CS_NWK = bytes.fromhex("00112233445566778899aabbccddeeff")
CS_APP = bytes.fromhex("ffeeddccbbaa99887766554433221100")
LPP = b"\x01\x67\x00\xe1"  # temperature 22.5 C


def make_ingest(
    tmp_path: Path, mode: str = "passive", extra_toml: str = ""
) -> tuple[Ingest, Store, list[Any]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(
        f'[agent]\ngateway_id = "t"\nstate_dir = "{tmp_path}"\n'
        "[store]\ncommit_interval_ms = 50\n"
        "[upstream]\nenabled = false\n"
        f'[lorawan]\nmode = "{mode}"\n' + extra_toml
    )
    store = Store(tmp_path / "agent.db", "FULL")
    store.upsert_devices(
        [
            Device(
                dev_eui=ABP_EUI,
                name="abp",
                device_class="co2",
                codec="cayenne-lpp",
                dev_addr=ABP_ADDR,
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
    sent: list[Any] = []

    def send(tx: Any) -> bool:
        sent.append(tx)
        return True

    ing = Ingest(
        read_config(cfg_file),
        store,
        _direct,
        Counters(),
        send,
        lambda: None,
        can_downlink=lambda gateway_id: True,
    )
    ing.load()
    return ing, store, sent


async def _direct(fn: Any, *a: Any) -> Any:
    return fn(*a)


def group(phy: bytes, tmst: int = 1_000_000) -> FrameGroup:
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


def commit(ing: Ingest) -> None:
    import asyncio

    asyncio.run(ing.flush())


def ids(ing: Ingest) -> list[str]:
    return [r[0] for r in ing.batch.readings]


def test_passive_join_request_is_not_answered_and_nothing_is_recorded(tmp_path: Path) -> None:
    ing, store, sent = make_ingest(tmp_path)
    asked: list[bytes] = []
    ing.on_join_heard = asked.append
    ing.handle_group(group(build_join_request(JOIN_EUI, OTAA_EUI, 7, APP_KEY)))
    assert not ing.post.downlinks, "no join-accept planned"
    assert not ing.batch.sessions and not ing.batch.dev_nonces, "no session, no DevNonce"
    assert asked == [OTAA_EUI], "the session fetch is told a join was heard"
    assert ing.counters.get("joins_heard", mode="passive", device="known") == 1
    commit(ing)
    assert not sent
    assert store.all_dev_nonces() == {}, "the central server's later sessions stay possible"
    # Edge mode (the same device, the same frame) answers it: passive changed only passive.
    ing2, _, _ = make_ingest(tmp_path / "edge", mode="edge")
    ing2.handle_group(group(build_join_request(JOIN_EUI, OTAA_EUI, 7, APP_KEY)))
    assert len(ing2.post.downlinks) == 1 and len(ing2.batch.dev_nonces) == 1


def test_passive_confirmed_uplink_with_mac_and_adr_gets_no_answer(tmp_path: Path) -> None:
    ing, _, sent = make_ingest(tmp_path)
    # Confirmed, ADR bit, ADRACKReq, LinkCheckReq (0x02) in FOpts: edge mode answers all four.
    phy = build_data_frame(
        4, ABP_ADDR, 3, NWK, APP, f_port=1, payload=LPP, fopts=b"\x02", adr=True, adr_ack_req=True
    )
    ing.downlinks.enqueue(ABP_EUI, 1, 10, b"\x01")  # a queued application downlink
    ing.handle_group(group(phy))
    assert ids(ing) == [reading_id(ABP_EUI, session_id(ABP_ADDR, NWK, APP), 3)]
    assert not ing.post.downlinks and not ing.batch.fcnt_down
    assert not ing.adr_states, "no network-side ADR in passive mode"
    ing.handle_group(group(phy, tmst=2_000_000))  # the confirmed frame again: no ACK either
    assert ing.counters.get("uplink_retransmissions") == 1
    assert not ing.post.downlinks
    assert ing.counters.get("downlink_suppressed", reason="passive") == 2
    commit(ing)
    assert sent == []
    edge, _, _ = make_ingest(tmp_path / "edge", mode="edge")
    edge.handle_group(group(phy))
    assert len(edge.post.downlinks) == 1, "edge mode still answers the same frame"


@pytest.mark.parametrize("gap", [20_000, 65_535])
def test_passive_fcnt_gap_of_frames_other_gateways_heard(tmp_path: Path, gap: int) -> None:
    ing, _, _ = make_ingest(tmp_path)
    edge, _, _ = make_ingest(tmp_path / "edge", mode="edge")
    for i in (ing, edge):
        i.handle_group(group(build_data_frame(2, ABP_ADDR, 100, NWK, APP, f_port=1, payload=LPP)))
    far = build_data_frame(2, ABP_ADDR, 100 + gap, NWK, APP, f_port=1, payload=LPP)
    ing.handle_group(group(far))
    edge.handle_group(group(far))
    sid = session_id(ABP_ADDR, NWK, APP)
    assert ids(ing)[-1] == reading_id(ABP_EUI, sid, 100 + gap), "the true FCnt32 in the id"
    assert len(ids(edge)) == 1 and edge.counters.get("bad_input", reason="replay") == 1
    # An older frame replayed (16 bits behind) is still refused: its MIC is over FCnt32.
    ing.handle_group(group(build_data_frame(2, ABP_ADDR, 150, NWK, APP, f_port=1, payload=LPP)))
    assert len(ids(ing)) == 2 and ing.counters.get("bad_input", reason="mic") == 1


def test_fetched_session_decodes_survives_reload_and_frees_parked_frames(tmp_path: Path) -> None:
    ing, store, _ = make_ingest(tmp_path)
    wanted: list[bytes] = []
    ing.on_unknown_addr = wanted.append
    first = build_data_frame(2, CS_ADDR, 40, CS_NWK, CS_APP, f_port=1, payload=LPP)
    ing.handle_group(group(first))  # nobody here has this DevAddr yet: parked, lookup asked
    assert wanted == [CS_ADDR] and not ids(ing)
    # The central server counted up to 40 (f_cnt_up 41): frame 40 still decodes here.
    assert ing.apply_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, 41) == "new"
    sid = session_id(CS_ADDR, CS_NWK, CS_APP)
    assert ids(ing) == [reading_id(OTAA_EUI, sid, 40)], "the parked frame decoded"
    assert ing.apply_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, 41) == "same"
    commit(ing)
    dev, st = store.device(OTAA_EUI)  # type: ignore[misc]
    assert dev.dev_addr == CS_ADDR and st["fcnt_up"] == 40
    note = {"source": "chirpstack", "devAddr": CS_ADDR.hex()}
    store.set_meta(f"session_source:{OTAA_EUI.hex()}", json.dumps(note))
    assert session_source(store.db, OTAA_EUI) == note
    store.set_meta(f"session_source:{OTAA_EUI.hex()}", json.dumps({**note, "devAddr": "01020304"}))
    assert session_source(store.db, OTAA_EUI) is None, "a note about an earlier session"
    assert dev.nwk_s_key == Secret(CS_NWK) and dev.app_s_key == Secret(CS_APP)
    # A restart: the cache comes back from SQLite; decoding goes on without the API.
    again, _, _ = make_ingest(tmp_path)
    again.handle_group(group(build_data_frame(2, CS_ADDR, 41, CS_NWK, CS_APP, f_port=1)))
    again.handle_group(group(first, tmst=5))  # frame 40 again: counted already
    assert ids(again) == [reading_id(OTAA_EUI, sid, 41)]


def test_fetched_counter_resyncs_past_the_16_bit_window(tmp_path: Path) -> None:
    """A device out of this gateway's reach for more than 65,536 frames: the 16 bits on air
    cannot say how far it went, the MIC fails, a lookup is asked, and the central server's
    counter brings the session up to date."""
    ing, _, _ = make_ingest(tmp_path)
    wanted: list[bytes] = []
    ing.on_unknown_addr = wanted.append
    ing.apply_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, 10)
    far = 10 + 70_000
    phy = build_data_frame(2, CS_ADDR, far, CS_NWK, CS_APP, f_port=1, payload=LPP)
    ing.handle_group(group(phy))
    assert not ids(ing) and wanted == [CS_ADDR]
    assert ing.apply_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, far + 1) == "advanced"
    assert ids(ing) == [reading_id(OTAA_EUI, session_id(CS_ADDR, CS_NWK, CS_APP), far)]


def test_a_rejoin_elsewhere_replaces_the_session_and_keeps_ids_apart(tmp_path: Path) -> None:
    ing, store, _ = make_ingest(tmp_path)
    ing.apply_session(OTAA_EUI, CS_ADDR, CS_NWK, CS_APP, 0)
    ing.handle_group(group(build_data_frame(2, CS_ADDR, 0, CS_NWK, CS_APP, f_port=1, payload=LPP)))
    new_addr, new_nwk = bytes.fromhex("01a2b3c5"), bytes(range(16))
    ing.apply_session(OTAA_EUI, new_addr, new_nwk, CS_APP, 0)  # a rejoin through another gateway
    ing.handle_group(group(build_data_frame(2, new_addr, 0, new_nwk, CS_APP, f_port=1)))
    got = ids(ing)
    assert len(got) == 2 and got[0] != got[1], "FCnt 0 of each session: two ids"
    commit(ing)
    with sqlite3.connect(tmp_path / "agent.db") as db:
        row = db.execute(
            "SELECT dev_addr, fcnt_up FROM devices WHERE dev_eui=?", (OTAA_EUI.hex(),)
        ).fetchone()
    assert row == (new_addr.hex(), 0)


def test_fetched_session_for_an_unknown_device_is_ignored(tmp_path: Path) -> None:
    ing, _, _ = make_ingest(tmp_path)
    stranger = bytes.fromhex("0102030405060708")
    assert ing.apply_session(stranger, CS_ADDR, CS_NWK, CS_APP, 3) == "unknown_device"
    assert not ing.batch.sessions
