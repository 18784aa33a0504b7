"""Reading ids (DESIGN.md invariant 2, issue #16 item 1): `{dev_eui}-{session}-{fcnt32}` never
repeats across an OTAA rejoin or an ABP counter reset, is the same on every agent that decodes the
frame, and survives a restart; a join staged after an old-session uplink in the same batch leaves
the new session's FCntUp fresh."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from gateway_agent.config import read_config
from gateway_agent.ingest import Ingest
from gateway_agent.lorawan.sessionid import session_id
from gateway_agent.model import Device
from gateway_agent.secret import Secret
from hil.lorawan_crypto import (
    build_data_frame,
    build_join_request,
    derive_session_keys,
    open_join_accept,
)
from tests.e2e.test_e2e_radio import APP, APP_KEY, JOIN_EUI, NWK
from tests.e2e.test_e2e_radio import DEV_EUI as OTAA_EUI
from tests.ingest.test_ingest_pipeline import ABP_EUI, ADDR, LPP, _direct, _group, _make

ID = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{8}(\.r[1-9][0-9]*)?-[0-9]+$")


def _ids(ing: Ingest) -> list[str]:
    return [r[0] for r in ing.batch.readings]


def _join(ing: Ingest, dev_nonce: int) -> tuple[bytes, bytes, bytes]:
    """A join-request heard; returns the new session's (DevAddr, NwkSKey, AppSKey)."""
    ing.handle_group(_group(build_join_request(JOIN_EUI, OTAA_EUI, dev_nonce, APP_KEY)))
    tx = next(tx for tx, _ in ing.post.downlinks if tx.purpose == "join_accept")
    ja = open_join_accept(tx.phy_payload, APP_KEY)
    nwk, app = derive_session_keys(APP_KEY, ja.join_nonce, ja.net_id, dev_nonce)
    return ja.dev_addr, nwk, app


def _up(ing: Ingest, addr: bytes, fcnt: int, nwk: bytes, app: bytes) -> None:
    ing.handle_group(_group(build_data_frame(2, addr, fcnt, nwk, app, f_port=1, payload=LPP)))


def _commit(ing: Ingest) -> None:
    asyncio.run(ing.flush())


def test_ids_never_repeat_across_an_otaa_rejoin(tmp_path: Path) -> None:
    ing = _make(tmp_path, _direct)
    addr, nwk, app = _join(ing, 77)
    for fcnt in range(3):
        _up(ing, addr, fcnt, nwk, app)
    first = _ids(ing)
    _commit(ing)
    addr2, nwk2, app2 = _join(ing, 78)
    for fcnt in range(3):
        _up(ing, addr2, fcnt, nwk2, app2)
    second = _ids(ing)
    assert len(first) == len(second) == 3
    assert not set(first) & set(second), (first, second)
    assert all(ID.match(i) for i in first + second), first + second
    sid = session_id(addr2, nwk2, app2)
    assert second == [f"{OTAA_EUI.hex()}-{sid}-{n}" for n in range(3)]
    assert ":" not in "".join(first + second), "no gateway id in a reading id"


def test_ids_never_repeat_across_an_abp_counter_reset_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    ing = _make(tmp_path, _direct)
    relaxed = Device(
        dev_eui=ABP_EUI,
        name="abp",
        device_class="co2",
        codec="cayenne-lpp",
        dev_addr=ADDR,
        nwk_s_key=Secret(NWK),
        app_s_key=Secret(APP),
        relaxed_fcnt=True,
    )
    ing.store.upsert_devices([relaxed])
    ing.load()
    sid = session_id(ADDR, NWK, APP)
    for fcnt in range(4):
        _up(ing, ADDR, fcnt, NWK, APP)
    _commit(ing)
    for fcnt in range(2):  # the device lost power: its counter starts again, same keys
        _up(ing, ADDR, fcnt, NWK, APP)
    assert _ids(ing) == [f"{ABP_EUI.hex()}-{sid}.r1-{n}" for n in range(2)]
    _commit(ing)
    ids = {r[0] for r in ing.store.db.execute("SELECT id FROM readings")}
    assert len(ids) == 6, ids
    # A restart: the epoch comes back from the store with the counter.
    again = Ingest(ing.cfg, ing.store, _direct, ing.counters, lambda tx: True, lambda: None)
    again.load()
    _up(again, ADDR, 2, NWK, APP)
    assert _ids(again) == [f"{ABP_EUI.hex()}-{sid}.r1-2"]
    _commit(again)
    _up(again, ADDR, 0, NWK, APP)  # a second reset
    assert _ids(again) == [f"{ABP_EUI.hex()}-{sid}.r2-0"]


def test_a_failed_commit_keeps_the_staged_counter_reset(tmp_path: Path) -> None:
    """After a reload from the store (a commit failed), the open batch's reset is applied again:
    the session's epoch and its lower FCnt, not the stored higher one."""
    ing = _make(tmp_path, _direct)
    ing.store.upsert_devices(
        [
            Device(
                dev_eui=ABP_EUI,
                device_class="co2",
                dev_addr=ADDR,
                nwk_s_key=Secret(NWK),
                app_s_key=Secret(APP),
                relaxed_fcnt=True,
            )
        ]
    )
    ing.load()
    for fcnt in range(4):
        _up(ing, ADDR, fcnt, NWK, APP)
    _commit(ing)
    _up(ing, ADDR, 0, NWK, APP)  # a reset, still in the open batch
    ing.load()
    ing._reapply(ing.batch)
    _up(ing, ADDR, 1, NWK, APP)
    sid = session_id(ADDR, NWK, APP)
    assert _ids(ing) == [f"{ABP_EUI.hex()}-{sid}.r1-{n}" for n in range(2)]


def test_one_frame_has_one_id_on_every_agent(tmp_path: Path) -> None:
    """Two agents (two gateway ids) hearing the same frame name it alike: a council merges
    overlapping gateways by id."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _make(tmp_path / "a", _direct), _make(tmp_path / "b", _direct)
    cfg_file = tmp_path / "b" / "agent.toml"
    cfg_file.write_text(cfg_file.read_text().replace('gateway_id = "t"', 'gateway_id = "other"'))
    b.cfg = read_config(cfg_file)
    assert a.cfg.agent.gateway_id != b.cfg.agent.gateway_id
    for ing in (a, b):
        _up(ing, ADDR, 7, NWK, APP)
    assert _ids(a) == _ids(b) == [f"{ABP_EUI.hex()}-{session_id(ADDR, NWK, APP)}-7"]


def test_a_join_after_an_old_session_uplink_in_one_batch_starts_the_counter_afresh(
    tmp_path: Path,
) -> None:
    """An uplink of the old session and the device's rejoin in the same batch: the stored FCntUp
    must be the new session's (none yet), or after a restart its frames are refused as replays."""
    ing = _make(tmp_path, _direct)
    addr, nwk, app = _join(ing, 77)
    for fcnt in range(40):
        _up(ing, addr, fcnt, nwk, app)
    _commit(ing)
    _up(ing, addr, 40, nwk, app)  # old session, then the rejoin: one batch
    addr2, nwk2, app2 = _join(ing, 78)
    _commit(ing)
    stored = ing.store.device(OTAA_EUI)
    assert stored is not None
    assert stored[1]["fcnt_up"] is None, stored[1]
    restarted = Ingest(ing.cfg, ing.store, _direct, ing.counters, lambda tx: True, lambda: None)
    restarted.load()
    _up(restarted, addr2, 0, nwk2, app2)
    assert _ids(restarted) == [f"{OTAA_EUI.hex()}-{session_id(addr2, nwk2, app2)}-0"]
    assert restarted.counters.get("bad_input", reason="replay") == 0
