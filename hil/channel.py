"""Radio channel: log-distance path loss with shadowing, per-gateway RSSI/SNR, random loss, and
collisions between overlapping transmissions on the same frequency and SF (with capture)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from hil.lorawan_device import SNR_FLOOR_DB, AirTx


@dataclass(frozen=True, slots=True)
class ChannelParams:
    tx_power_dbm: float = 14.0
    pl_1m_db: float = 31.2  # free-space loss at 1 m, 868 MHz
    exponent: float = 2.8  # urban log-distance exponent
    shadowing_db: float = 6.0  # per-link log-normal shadowing (fixed for the link)
    fading_db: float = 2.0  # per-packet variation
    noise_figure_db: float = 6.0
    loss_prob: float = 0.0  # independent per-reception loss (interference, a bus passing...)
    capture_db: float = 6.0  # a frame this much stronger survives a collision


@dataclass(frozen=True, slots=True)
class Position:
    x_m: float
    y_m: float
    extra_loss_db: float = 0.0  # building penetration, a bin lid, a gully grate

    def distance(self, other: Position) -> float:
        return max(1.0, math.hypot(self.x_m - other.x_m, self.y_m - other.y_m))


@dataclass(frozen=True, slots=True)
class Reception:
    tx: AirTx
    gateway: int  # index into the channel's gateways
    rssi_dbm: int
    snr_db: float


@dataclass(slots=True)
class ChannelStats:
    transmissions: int = 0
    heard: int = 0  # transmissions received by at least one gateway
    receptions: int = 0
    collided: int = 0  # receptions destroyed by a collision
    too_weak: int = 0
    random_loss: int = 0


@dataclass(slots=True)
class _OnAir:
    tx: AirTx
    power: dict[int, float] = field(default_factory=dict)  # gateway -> RSSI (dBm)


class Channel:
    """Feed transmissions in start order with `transmit`; `release(now_s)` resolves every
    transmission that ended by `now_s` (no later transmission can overlap it any more)."""

    def __init__(
        self, gateways: list[Position], params: ChannelParams | None = None, seed: int = 0
    ) -> None:
        self.gateways = gateways
        self.params = params or ChannelParams()
        self.rng = random.Random(seed)
        self.devices: dict[bytes, Position] = {}
        self.shadow: dict[tuple[bytes, int], float] = {}
        self.on_air: list[_OnAir] = []
        self.unresolved: list[_OnAir] = []
        self.stats = ChannelStats()

    @property
    def noise_floor_dbm(self) -> float:
        return -174.0 + 10 * math.log10(125_000) + self.params.noise_figure_db

    def place(self, dev_eui: bytes, pos: Position) -> None:
        self.devices[dev_eui] = pos
        for g in range(len(self.gateways)):
            self.shadow[(dev_eui, g)] = self.rng.gauss(0.0, self.params.shadowing_db)

    def mean_rssi(self, dev_eui: bytes, gw: int) -> float:
        pos = self.devices[dev_eui]
        p = self.params
        pl = p.pl_1m_db + 10 * p.exponent * math.log10(pos.distance(self.gateways[gw]))
        return p.tx_power_dbm - pl - pos.extra_loss_db - self.shadow[(dev_eui, gw)]

    def best_snr(self, dev_eui: bytes) -> float:
        """Expected SNR at the best gateway: what a device's ADR would settle on."""
        return (
            max(self.mean_rssi(dev_eui, g) for g in range(len(self.gateways)))
            - self.noise_floor_dbm
        )

    def transmit(self, tx: AirTx) -> None:
        if tx.dev_eui not in self.devices:
            raise KeyError(f"device {tx.dev_eui.hex()} was not placed")
        air = _OnAir(tx)
        for g in range(len(self.gateways)):
            air.power[g] = (
                self.mean_rssi(tx.dev_eui, g)
                + tx.power_offset_db
                + self.rng.gauss(0.0, self.params.fading_db)
            )
        self.on_air.append(air)
        self.unresolved.append(air)
        self.stats.transmissions += 1

    def _collides(self, a: _OnAir, g: int) -> bool:
        for b in self.on_air:
            if b is a or b.tx.freq_hz != a.tx.freq_hz or b.tx.sf != a.tx.sf:
                continue
            overlap = b.tx.start_s < a.tx.end_s and a.tx.start_s < b.tx.end_s
            if overlap and a.power[g] - b.power[g] < self.params.capture_db:
                return True
        return False

    def release(self, now_s: float) -> list[tuple[AirTx, list[Reception]]]:
        done = [a for a in self.unresolved if a.tx.end_s <= now_s]
        if not done:
            return []
        self.unresolved = [a for a in self.unresolved if a.tx.end_s > now_s]
        out: list[tuple[AirTx, list[Reception]]] = []
        for a in done:
            recs: list[Reception] = []
            for g, rssi in a.power.items():
                snr = rssi - self.noise_floor_dbm
                if snr < SNR_FLOOR_DB[a.tx.sf]:
                    self.stats.too_weak += 1
                    continue
                if self._collides(a, g):
                    self.stats.collided += 1
                    continue
                if self.rng.random() < self.params.loss_prob:
                    self.stats.random_loss += 1
                    continue
                # SX130x reports SNR up to about +13.5 dB; RSSI saturates near -30 dBm.
                recs.append(Reception(a.tx, g, round(max(rssi, -139.0)), round(min(snr, 13.5), 1)))
            self.stats.receptions += len(recs)
            if recs:
                self.stats.heard += 1
            out.append((a.tx, recs))
        horizon = now_s - 10.0  # longest EU868 frame is ~2.8 s; keep a margin for overlap checks
        self.on_air = [a for a in self.on_air if a.tx.end_s > horizon]
        return out
