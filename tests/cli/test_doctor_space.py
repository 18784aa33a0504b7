"""`doctor` says when a full disk sets the store's cap, refuses commits or rows were set aside
(#16 item 3: say so in the log and in doctor)."""

from __future__ import annotations

from gateway_agent.doctor import check_store_space


def test_store_space_states() -> None:
    assert check_store_space(None) is None
    base = {"cap_bytes": 512_000_000, "limited_by": "max_db_mb", "reserve": True}
    assert check_store_space({"store": {**base, "disk_full_s": None}}).status == "ok"
    r = check_store_space(
        {"store": {**base, "limited_by": "filesystem", "cap_bytes": 15_800_000, "reserve": False}}
    )
    assert r.status == "warn" and "15.8 MB" in r.detail and "reserve file given up" in r.detail
    r = check_store_space({"store": {**base, "disk_full_s": 12.0}})
    assert r.status == "fail" and "commits refused" in r.detail and r.fix
    r = check_store_space({"store": {**base, "damaged": {"outbox": 2}}})
    assert r.status == "warn" and "2 damaged rows" in r.detail
