"""Each OTAA device's used DevNonces and last JoinNonce as committed, kept in memory so a join
never reads SQLite on the event loop; uncommitted joins are counted from the open batches."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from typing import Any

from gateway_agent.ingest.stage import staged_dev_nonces, staged_join_count
from gateway_agent.model import Device
from gateway_agent.store import Batch


class JoinNonces:
    """A mirror of `dev_nonces` and `devices.join_nonce` for the devices that can join.

    `load` (store thread) replaces it with the store's rows; `committed` (event loop) adds a
    batch once it committed. Both are idempotent, so their order does not matter. A device's
    nonces are 2 bytes each in an array (all of them: LoRaWAN 1.0.x never allows one again)."""

    def __init__(self) -> None:
        self.used: dict[bytes, array[int]] = {}
        self.join_nonce: dict[bytes, int] = {}

    def load(
        self, rows: Iterable[tuple[Device, dict[str, Any]]], nonces: dict[str, list[int]]
    ) -> None:
        used: dict[bytes, array[int]] = {}
        join_nonce: dict[bytes, int] = {}
        for dev, st in rows:
            if dev.join_eui is None:
                continue
            join_nonce[dev.dev_eui] = int(st.get("join_nonce") or 0)
            mine = nonces.get(dev.dev_eui.hex())
            if mine:
                used[dev.dev_eui] = array("H", mine)
        self.used, self.join_nonce = used, join_nonce

    def committed(self, b: Batch) -> None:
        """The joins of a batch that committed."""
        for eui_hex, nonce, _ in b.dev_nonces:
            eui = bytes.fromhex(eui_hex)
            mine = self.used.get(eui)
            if mine is None:
                self.used[eui] = array("H", (nonce,))
            elif nonce not in mine:
                mine.append(nonce)
        for eui_hex, _, _, _, jn in b.sessions:
            eui = bytes.fromhex(eui_hex)
            self.join_nonce[eui] = max(self.join_nonce.get(eui, 0), jn)

    def used_by(self, dev_eui: bytes, open_batches: list[Batch]) -> set[int]:
        """DevNonces the device may not use again: committed ones and those of open batches."""
        return set(self.used.get(dev_eui, ())) | staged_dev_nonces(open_batches, dev_eui)

    def next_join_nonce(self, dev_eui: bytes, open_batches: list[Batch]) -> int:
        return self.join_nonce.get(dev_eui, 0) + 1 + staged_join_count(open_batches, dev_eui)
