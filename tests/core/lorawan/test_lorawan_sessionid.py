"""lorawan/sessionid.py and the id prefix a DeviceSession caches (DESIGN.md invariant 2)."""

from __future__ import annotations

from dataclasses import replace

from gateway_agent.lorawan.session import DeviceSession
from gateway_agent.lorawan.sessionid import reading_id, session_id, session_tag

EUI, ADDR = bytes.fromhex("70b3d57ed0000001"), bytes.fromhex("26011bda")
NWK, APP = bytes(range(16)), bytes(range(16, 32))


def test_the_session_id_is_short_one_way_and_changes_with_any_key() -> None:
    sid = session_id(ADDR, NWK, APP)
    assert len(sid) == 8 and int(sid, 16) >= 0
    assert NWK.hex()[:8] not in sid and APP.hex()[:8] not in sid
    assert session_id(ADDR, NWK, APP) == sid, "every agent computes the same"
    others = {
        session_id(bytes.fromhex("26011bdb"), NWK, APP),
        session_id(ADDR, APP, NWK),
        session_id(ADDR, NWK, bytes(16)),
    }
    assert sid not in others and len(others) == 3


def test_the_session_caches_its_id_prefix_through_every_copy() -> None:
    s = DeviceSession(EUI, ADDR, NWK, APP, None)
    sid = session_id(ADDR, NWK, APP)
    assert s.id_prefix == f"{EUI.hex()}-{sid}-"
    assert s.with_fcnt_up(7).id_prefix == s.id_prefix
    assert s.with_fcnt_down(3).id_prefix == s.id_prefix
    assert s.with_fcnt_down(3) == replace(s, fcnt_down=3)
    reset = s.with_counter(0, 1)
    assert reset.id_prefix == f"{EUI.hex()}-{session_tag(sid, 1)}-" == f"{EUI.hex()}-{sid}.r1-"
    assert reading_id(EUI, session_tag(sid, 1), 0) == reset.id_prefix + "0"
    assert "keys=<redacted>" in repr(s) and NWK.hex() not in repr(s)
