"""Passive mode (`[lorawan] mode = "passive"`): a central network server (ChirpStack) owns joins,
ACKs, ADR, MAC and downlinks; this agent sends none of its own but still verifies, decrypts,
decodes, stores and alerts for the devices whose session it holds.

A session fetched from the central server's API (gateway_agent/relay/sessions.py) lands here the
way a join does: cached at once, staged in the open batch (the devices table's session columns,
committed with the group commit), so decoding goes on through a backhaul outage and a restart.
A frame whose DevAddr no session knows (or whose MIC fails: a rejoin, a counter run past what
this agent heard) asks for a lookup and waits here a little for its answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway_agent.ingest.nonces import JoinNonces
from gateway_agent.ingest.sessions import SessionCache
from gateway_agent.ingest.stage import Stage
from gateway_agent.lorawan.dedup import FrameGroup
from gateway_agent.lorawan.fcnt import MAX_FCNT32
from gateway_agent.lorawan.session import DeviceSession

# In passive mode other gateways hear what this one misses: any forward step the 16 bits on
# air can express is a candidate. A frame older than the last one accepted reconstructs 2^16
# ahead of its real counter, so its MIC (over the 32-bit FCnt) fails: no replay is accepted.
PASSIVE_MAX_FCNT_GAP = 0xFFFF
PARK_S = 30.0  # a frame waits this long for the lookup its DevAddr asked for
PARK_PER_ADDR = 8
PARK_ADDRS = 256


def max_fcnt_gap(mode: str, configured: int) -> int:
    return PASSIVE_MAX_FCNT_GAP if mode == "passive" else configured


@dataclass(frozen=True, slots=True)
class FetchedSession:
    """A device's session as the central network server has it (ChirpStack's GetActivation).
    `f_cnt_up` is ChirpStack's: the next uplink counter it expects. Keys are secret."""

    dev_eui: bytes
    dev_addr: bytes
    nwk_s_key: bytes
    app_s_key: bytes
    f_cnt_up: int = 0

    def __post_init__(self) -> None:
        if len(self.dev_eui) != 8 or len(self.dev_addr) != 4:
            raise ValueError("dev_eui must be 8 bytes and dev_addr 4")
        if len(self.nwk_s_key) != 16 or len(self.app_s_key) != 16:
            raise ValueError("session keys must be 16 bytes")
        if not 0 <= self.f_cnt_up <= MAX_FCNT32 + 1:
            raise ValueError("f_cnt_up out of range")

    def __repr__(self) -> str:
        return (
            f"FetchedSession(dev_eui={self.dev_eui.hex()}, dev_addr={self.dev_addr.hex()}, "
            f"f_cnt_up={self.f_cnt_up}, keys=<redacted>)"
        )

    @property
    def fcnt_floor(self) -> int | None:
        """The last FCnt32 this agent takes as already counted: one frame behind the server's
        last (`f_cnt_up - 1`), so the frame that made this agent ask (heard by both at the same
        moment) still decodes here. None: nothing counted yet (the 16 bits are the counter)."""
        return self.f_cnt_up - 2 if self.f_cnt_up >= 2 else None


class Passive:
    """Fetched sessions into the cache and the batch; frames parked for a lookup."""

    def __init__(self, cache: SessionCache, stage: Stage, nonces: JoinNonces) -> None:
        self.cache = cache
        self.stage = stage
        self.nonces = nonces
        # Set by the daemon (gateway_agent/relay/sessions.py) when an API is configured.
        self.on_unknown_addr: Callable[[bytes], None] | None = None
        self.on_join_heard: Callable[[bytes], None] | None = None
        self.parked: dict[bytes, list[tuple[float, FrameGroup]]] = {}
        self.retrying = False

    def want(self, dev_addr: bytes, group: FrameGroup) -> None:
        """No session of `dev_addr` verified this frame: ask for a lookup, park the frame."""
        hook = self.on_unknown_addr
        if hook is None or self.retrying:
            return
        now = time.monotonic()
        lst = self.parked.get(dev_addr)
        if lst is None:
            if len(self.parked) >= PARK_ADDRS:
                self.expire(now)
                if len(self.parked) >= PARK_ADDRS:
                    self.parked.pop(next(iter(self.parked)))
            lst = self.parked[dev_addr] = []
        if len(lst) >= PARK_PER_ADDR:
            lst.pop(0)
        lst.append((now, group))
        hook(dev_addr)

    def join_heard(self, dev_eui: bytes) -> None:
        if self.on_join_heard is not None:
            self.on_join_heard(dev_eui)

    def expire(self, now: float) -> None:
        for addr in [a for a, lst in self.parked.items() if lst[-1][0] < now - PARK_S]:
            del self.parked[addr]

    def apply(self, f: FetchedSession) -> tuple[str, list[FrameGroup]]:
        """Make `f` the device's session. Returns what it was ("new": other keys or DevAddr, as
        after a join; "advanced": the same session, its counter moved past frames this agent
        never heard; "same"; "unknown_device") and the parked frames to try again."""
        dev = self.cache.devices.get(f.dev_eui)
        if dev is None:
            return "unknown_device", []
        cur = self._current(f.dev_eui)
        floor = f.fcnt_floor
        eui = f.dev_eui.hex()
        b = self.stage.batch
        if (
            cur is None
            or cur.dev_addr != f.dev_addr
            or cur.nwk_s_key != f.nwk_s_key
            or cur.app_s_key != f.app_s_key
        ):
            # Like Stage.join, without a DevNonce: the central server keeps those.
            join_nonce = self.nonces.join_nonce.get(f.dev_eui, 0)
            b.sessions.append((eui, f.dev_addr.hex(), f.nwk_s_key, f.app_s_key, join_nonce))
            b.fcnt_down.pop(eui, None)
            b.fcnt_resets.pop(eui, None)
            b.fcnt_up.pop(eui, None)
            if floor is not None:
                b.fcnt_up[eui] = floor
            self.cache.set_session(
                DeviceSession(
                    dev_eui=f.dev_eui,
                    dev_addr=f.dev_addr,
                    nwk_s_key=f.nwk_s_key,
                    app_s_key=f.app_s_key,
                    fcnt_up=floor,
                    fcnt_down=0,
                    relaxed_fcnt=dev.relaxed_fcnt,
                )
            )
            outcome = "new"
        elif floor is not None and (cur.fcnt_up is None or floor > cur.fcnt_up):
            self.cache.set_session(cur.with_fcnt_up(floor))
            b.fcnt_up[eui] = max(b.fcnt_up.get(eui, floor), floor)
            outcome = "advanced"
        else:
            return "same", []
        self.stage.touch()
        now = time.monotonic()
        parked = self.parked.pop(f.dev_addr, [])
        return outcome, [g for t, g in parked if t >= now - PARK_S]

    def _current(self, dev_eui: bytes) -> DeviceSession | None:
        addr = self.cache.addr_of.get(dev_eui)
        for s in self.cache.by_addr.get(addr, []) if addr is not None else ():
            if s.dev_eui == dev_eui:
                return s
        return None
