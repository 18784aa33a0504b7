"""Dedup window: fold byte-identical PHYPayloads heard by several receivers (LORAWAN.md 6). Pure.

Time is passed in (monotonic seconds, never decreasing). Memory is bounded by `max_groups`.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from gateway_agent.lorawan.frozen import fast_constructor
from gateway_agent.lorawan.radio import RadioFrame, RxInfo

_NEG_INF = float("-inf")


def signal_key(rx: RxInfo) -> tuple[float, float]:
    """Sort key, best first: highest SNR, then highest RSSI (unknown values sort last)."""
    snr = rx.snr_db if rx.snr_db is not None else _NEG_INF
    rssi = rx.rssi_dbm if rx.rssi_dbm is not None else _NEG_INF
    return (-snr, -rssi)


@dataclass(frozen=True, slots=True)
class FrameGroup:
    """One transmission: its PHYPayload and every reception of it, best signal first."""

    phy_payload: bytes
    rx: tuple[RxInfo, ...]
    first_seen: float


_new_group = fast_constructor(FrameGroup)


@dataclass(slots=True)
class _Open:
    first_seen: float
    rx: list[RxInfo]


class DedupWindow:
    """Collects receptions for `window_s` after the first one, then releases one `FrameGroup`.

    A copy arriving after its group was released but within `late_memory_s` is a late
    duplicate: `add` returns False and `late_duplicates` counts it. Keep `late_memory_s` below
    the earliest confirmed-uplink retransmission (RX2 + ACK_TIMEOUT, >= 3 s) so those still
    reach the session logic and get their ACK.

    With `early_release`, a group is released as soon as every receiver heard within the last
    `receiver_memory_s` has reported it (at once on a single-radio site) instead of waiting out
    the window: a frame waiting in the window is a frame a power cut loses (issue #16). Groups
    still leave in arrival order. A receiver silent for `receiver_memory_s` stops being waited
    for. A receiver's first frame always waits out the window (a site whose gateways are all
    new groups its first frames fully); `know` seeds receivers known from before a restart.
    """

    __slots__ = (
        "_open",
        "_order",
        "_ready",
        "_recent",
        "duplicates",
        "evicted_early",
        "last_add_late",
        "late_duplicates",
        "late_memory_s",
        "max_groups",
        "early_release",
        "receiver_memory_s",
        "_receivers",
        "_first_heard",
        "window_s",
    )

    def __init__(
        self,
        window_s: float,
        max_groups: int = 10000,
        late_memory_s: float = 2.0,
        early_release: bool = False,
        receiver_memory_s: float = 60.0,
    ) -> None:
        if window_s < 0 or late_memory_s < 0:
            raise ValueError("window_s and late_memory_s must be >= 0")
        if max_groups < 1:
            raise ValueError("max_groups must be >= 1")
        self.window_s = window_s
        self.max_groups = max_groups
        self.late_memory_s = late_memory_s
        self._open: dict[bytes, _Open] = {}
        # Arrival order of open groups. Not `next(iter(self._open))`: after many deletions from
        # the front of a dict, finding its first live entry walks the dead slots (O(n) each).
        self._order: deque[tuple[bytes, _Open]] = deque()
        self._ready: list[FrameGroup] = []
        self._recent: OrderedDict[bytes, float] = OrderedDict()  # payload -> forget-after time
        self.duplicates = 0  # copies folded into an open group
        self.late_duplicates = 0  # copies arriving after their group was released
        self.evicted_early = 0  # groups released before their window because of max_groups
        self.last_add_late = False
        self.early_release = early_release
        self.receiver_memory_s = receiver_memory_s
        self._receivers: dict[str, float] = {}  # gateway_id -> last heard (monotonic)
        self._first_heard: dict[str, float] = {}  # gateway_id -> first heard

    def __len__(self) -> int:
        return len(self._open) + len(self._ready)

    def add(self, frame: RadioFrame, now: float) -> bool:
        """Record one reception; True when it opened a new group."""
        self.last_add_late = False
        phy = frame.phy_payload
        if self.early_release:
            self._heard(frame.rx.gateway_id, now, now)
        group = self._open.get(phy)
        if group is not None:
            group.rx.append(frame.rx)
            self.duplicates += 1
            return False
        until = self._recent.get(phy)
        if until is not None:
            if until > now:
                self.late_duplicates += 1
                self.last_add_late = True
                return False
            del self._recent[phy]  # remembered too long ago: a new transmission
        if len(self._open) >= self.max_groups:
            oldest, group = self._order.popleft()
            del self._open[oldest]
            self._ready.append(self._release(oldest, group, now))
            self.evicted_early += 1
        group = self._open[phy] = _Open(now, [frame.rx])
        self._order.append((phy, group))
        return True

    def know(self, gateway_ids: Iterable[str], now: float) -> None:
        """Receivers known from before (a restart): waited for as if just heard at `now`, and
        their frames may leave early from the first one on."""
        for g in gateway_ids:
            self._heard(g, now, _NEG_INF)

    def _heard(self, gw: str, now: float, first: float) -> None:
        receivers = self._receivers
        receivers.pop(gw, None)  # most recent last: the oldest is evicted first
        receivers[gw] = now
        self._first_heard.setdefault(gw, first)
        if len(receivers) > 1024:
            old = next(iter(receivers))
            del receivers[old]
            self._first_heard.pop(old, None)

    def _complete(self, group: _Open, active: set[str]) -> bool:
        """Every active receiver reported it, and none of them is new with this frame."""
        heard = {rx.gateway_id for rx in group.rx}
        first = self._first_heard
        return active <= heard and all(
            first.get(g, group.first_seen) < group.first_seen for g in heard
        )

    def pop_due(self, now: float) -> list[FrameGroup]:
        """Release every group whose window has closed, oldest first."""
        out, self._ready = self._ready, []
        # Groups are in arrival order and `now` never goes back: stop at the first open one.
        order, window = self._order, self.window_s
        active = self._active(now) if self.early_release else None
        while order:
            phy, group = order[0]
            if group.first_seen + window > now and not (
                active is not None and self._complete(group, active)
            ):
                break
            order.popleft()
            del self._open[phy]
            out.append(self._release(phy, group, now))
        self._forget(now)
        return out

    def next_deadline(self) -> float | None:
        """When `pop_due` next has something to return (None: nothing pending)."""
        if self._ready:
            return self._ready[0].first_seen
        if not self._order:
            return None
        first = self._order[0][1]
        if self.early_release and self._active(first.first_seen) <= {
            r.gateway_id for r in first.rx
        }:
            return first.first_seen  # complete: due now
        return first.first_seen + self.window_s

    def _active(self, now: float) -> set[str]:
        """Receivers heard within `receiver_memory_s` (the ones a new frame may still reach)."""
        since = now - self.receiver_memory_s
        return {g for g, t in self._receivers.items() if t > since}

    def _release(self, phy: bytes, group: _Open, now: float) -> FrameGroup:
        self._recent[phy] = now + self.late_memory_s
        self._recent.move_to_end(phy)
        while len(self._recent) > self.max_groups:
            self._recent.popitem(last=False)
        rx = group.rx
        best_first = tuple(sorted(rx, key=signal_key)) if len(rx) > 1 else (rx[0],)
        return _new_group(phy, best_first, group.first_seen)

    def _forget(self, now: float) -> None:
        recent = self._recent
        while recent:
            phy, until = next(iter(recent.items()))
            if until > now:
                break
            del recent[phy]
