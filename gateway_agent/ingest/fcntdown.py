"""Which FCntDown each downlink takes, from memory: the value rides in the batch that carries the
answer, and the answer goes out only once that batch committed (LORAWAN.md 5.2)."""

from __future__ import annotations

from collections.abc import Container

from gateway_agent.lorawan.session import DeviceSession


class FCntDown:
    """The next FCntDown per device: the session's (as loaded from the store, 0 after a join) or,
    for the same session, above every one this process handed out. Owned by the event loop: a
    reload from the store (another thread, maybe before an in-flight commit) cannot lower it."""

    def __init__(self) -> None:
        self.handed: dict[bytes, tuple[bytes, int]] = {}  # dev_eui -> (NwkSKey, next FCntDown)

    def take(self, s: DeviceSession) -> int:
        """The FCntDown for the next downlink of session `s`; the one after is `take(s) + 1`."""
        n = s.fcnt_down
        prev = self.handed.get(s.dev_eui)
        if prev is not None and prev[0] == s.nwk_s_key:
            n = max(n, prev[1])
        self.handed[s.dev_eui] = (s.nwk_s_key, n + 1)
        return n

    def prune(self, devices: Container[bytes]) -> None:
        """Forget removed devices (the map is otherwise one entry per device ever answered)."""
        self.handed = {e: v for e, v in self.handed.items() if e in devices}
