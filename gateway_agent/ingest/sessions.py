"""The ingest's in-memory device cache: devices by DevEUI and by join key, sessions by DevAddr.

Loaded from the store; advanced per accepted uplink and join ahead of the commit (invariant 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway_agent.ingest.stage import staged_fcnt_resets, staged_fcnt_up, staged_joins
from gateway_agent.lorawan.session import DeviceSession
from gateway_agent.model import Device
from gateway_agent.store import Batch


def joined(dev_eui: bytes, dev_addr: bytes, nwk_s_key: bytes, app_s_key: bytes) -> DeviceSession:
    """The fresh session of an accepted join: no uplink counted yet, FCntDown from zero."""
    return DeviceSession(
        dev_eui=dev_eui,
        dev_addr=dev_addr,
        nwk_s_key=nwk_s_key,
        app_s_key=app_s_key,
        fcnt_up=None,
        fcnt_down=0,
    )


class SessionCache:
    def __init__(self) -> None:
        self.devices: dict[bytes, Device] = {}
        self.by_addr: dict[bytes, list[DeviceSession]] = {}  # dev_addr -> sessions
        self.addr_of: dict[bytes, bytes] = {}  # dev_eui -> dev_addr of its session
        self.by_join: dict[tuple[bytes, bytes], Device] = {}  # (join_eui, dev_eui) -> device

    def load(self, rows: Iterable[tuple[Device, dict[str, Any]]]) -> None:
        """Replace the cache with the store's devices and their session state."""
        devices: dict[bytes, Device] = {}
        sessions: dict[bytes, list[DeviceSession]] = {}
        by_join: dict[tuple[bytes, bytes], Device] = {}
        for dev, st in rows:
            devices[dev.dev_eui] = dev
            if dev.join_eui is not None:
                by_join[(dev.join_eui, dev.dev_eui)] = dev
            if dev.dev_addr and dev.nwk_s_key and dev.app_s_key:
                s = DeviceSession(
                    dev_eui=dev.dev_eui,
                    dev_addr=dev.dev_addr,
                    nwk_s_key=dev.nwk_s_key.reveal_bytes(),
                    app_s_key=dev.app_s_key.reveal_bytes(),
                    fcnt_up=st["fcnt_up"],
                    fcnt_down=st["fcnt_down"],
                    relaxed_fcnt=dev.relaxed_fcnt,
                    reset_epoch=st.get("fcnt_resets") or 0,
                )
                sessions.setdefault(dev.dev_addr, []).append(s)
        self.devices, self.by_addr, self.by_join = devices, sessions, by_join
        self.addr_of = {x.dev_eui: addr for addr, lst in sessions.items() for x in lst}

    def set_session(self, s: DeviceSession) -> None:
        """Replace the device's session; an OTAA rejoin moves it to its new DevAddr."""
        old_addr = self.addr_of.get(s.dev_eui)
        if old_addr is not None and old_addr != s.dev_addr:
            rest = [x for x in self.by_addr.get(old_addr, []) if x.dev_eui != s.dev_eui]
            if rest:
                self.by_addr[old_addr] = rest
            else:
                self.by_addr.pop(old_addr, None)
        lst = self.by_addr.get(s.dev_addr)
        if lst is None:
            self.by_addr[s.dev_addr] = [s]
        else:
            for i, x in enumerate(lst):
                if x.dev_eui == s.dev_eui:
                    lst[i] = s
                    break
            else:
                lst.append(s)
        self.addr_of[s.dev_eui] = s.dev_addr

    def reapply(self, b: Batch) -> None:
        """After a reload from the store: the uncommitted joins and counters of `b` again."""
        for dev_eui, dev_addr, nwk_s_key, app_s_key in staged_joins(b):
            dev = self.devices.get(dev_eui)
            if dev is not None:
                self.set_session(joined(dev.dev_eui, dev_addr, nwk_s_key, app_s_key))
        resets = dict(staged_fcnt_resets(b))
        for dev_eui, fcnt in staged_fcnt_up(b):
            for s in self.by_addr.get(self.addr_of.get(dev_eui, b""), []):
                if s.dev_eui != dev_eui:
                    continue
                epoch = resets.get(dev_eui)
                if epoch is not None and epoch > s.reset_epoch:
                    # A counter reset staged: its lower FCnt wins over the stored one.
                    self.set_session(s.with_counter(fcnt, epoch))
                elif s.fcnt_up is None or s.fcnt_up < fcnt:
                    self.set_session(s.with_fcnt_up(fcnt))
