"""A simulated class-A LoRaWAN 1.0.4 end device: ABP or OTAA, counters, confirmed retries, EU868
duty cycle from real airtime, data-rate choice. State machine over simulated time (seconds)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hil.airtime import airtime_ms
from hil.lorawan_crypto import (
    DataFrame,
    LorawanSimError,
    build_data_frame,
    build_join_request,
    derive_session_keys,
    open_data_frame,
    open_join_accept,
)

# EU868 data rates (LORAWAN.md section 10): DR -> (SF, BW kHz)
DR_TABLE = {
    0: (12, 125),
    1: (11, 125),
    2: (10, 125),
    3: (9, 125),
    4: (8, 125),
    5: (7, 125),
    6: (7, 250),
}
MAX_FRM = {0: 51, 1: 51, 2: 51, 3: 115, 4: 222, 5: 222, 6: 222}
# Demodulation floor (SNR, dB) per SF, Semtech SX127x datasheet figures.
SNR_FLOOR_DB = {7: -7.5, 8: -10.0, 9: -12.5, 10: -15.0, 11: -17.5, 12: -20.0}
DEFAULT_CHANNELS_HZ = (868_100_000, 868_300_000, 868_500_000)
CFLIST_CHANNELS_HZ = (867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000)
DUTY_CYCLE = 0.01  # 1 % in both sub-bands used by these channels
MAX_TX_POWER_INDEX = 7  # EU868 TXPower 0..7: max EIRP minus 2 dB a step
# Downlink MAC command payload lengths (LoRaWAN 1.0.4 table), to walk FOpts
DOWN_MAC_LEN = {
    0x02: 2,
    0x03: 4,
    0x04: 1,
    0x05: 4,
    0x06: 0,
    0x07: 5,
    0x08: 1,
    0x09: 1,
    0x0A: 4,
    0x0D: 5,
}


def sub_band(freq_hz: int) -> str:
    """EU868 duty-cycle sub-band of a frequency (ETSI EN 300 220 bands used by LoRaWAN)."""
    if 868_000_000 <= freq_hz <= 868_600_000:
        return "g1"
    if 869_400_000 <= freq_hz <= 869_650_000:
        return "g3"
    return "g"


def choose_dr(snr_db: float, margin_db: float = 5.0) -> int:
    """Fastest 125 kHz DR whose demodulation floor the expected SNR clears by `margin_db`."""
    for dr in (5, 4, 3, 2, 1, 0):
        if snr_db >= SNR_FLOOR_DB[DR_TABLE[dr][0]] + margin_db:
            return dr
    return 0


@dataclass(frozen=True, slots=True)
class AirTx:
    """One transmission on air, in simulated time."""

    phy: bytes
    freq_hz: int
    sf: int
    bw_khz: int
    start_s: float
    airtime_ms: float
    dev_eui: bytes
    fcnt: int | None  # None for a join-request
    kind: str  # "data" | "join"
    attempt: int = 1
    confirmed: bool = False
    power_offset_db: float = 0.0  # below the scenario's TX power (LinkADRReq TXPower steps)

    @property
    def end_s(self) -> float:
        return self.start_s + self.airtime_ms / 1000.0


@dataclass(frozen=True, slots=True)
class DownlinkResult:
    kind: str  # "join_accept" | "data"
    ack: bool = False
    f_port: int | None = None
    payload: bytes = b""


@dataclass(slots=True)
class DeviceStats:
    uplinks: int = 0
    retransmissions: int = 0
    joins_sent: int = 0
    joined: int = 0
    acks: int = 0
    downlinks: int = 0
    bad_downlinks: int = 0
    duty_blocked: int = 0
    gave_up: int = 0
    adr_changes: int = 0


class LorawanDevice:
    """Device-side stack. Identifiers big-endian bytes (as written), keys as bytes."""

    def __init__(
        self,
        dev_eui: bytes,
        *,
        dev_addr: bytes | None = None,
        nwk_s_key: bytes | None = None,
        app_s_key: bytes | None = None,
        join_eui: bytes | None = None,
        app_key: bytes | None = None,
        dr: int = 5,
        nb_trans_confirmed: int = 4,
        rng: random.Random | None = None,
    ) -> None:
        self.dev_eui = dev_eui
        self.join_eui = join_eui
        self.app_key = app_key
        self.dev_addr = dev_addr
        self.nwk_s_key = nwk_s_key
        self.app_s_key = app_s_key
        self.otaa = app_key is not None
        if not self.otaa and (dev_addr is None or nwk_s_key is None or app_s_key is None):
            raise ValueError("ABP needs dev_addr, nwk_s_key and app_s_key")
        self.dr = dr
        self.nb_trans_confirmed = nb_trans_confirmed
        self.rng = rng or random.Random(int.from_bytes(dev_eui, "big"))
        self.channels: tuple[int, ...] = DEFAULT_CHANNELS_HZ + (
            () if self.otaa else CFLIST_CHANNELS_HZ
        )
        self.fcnt_up = 0  # next FCnt32 to use
        self.fcnt_down: int | None = None  # last accepted FCntDown
        self.dev_nonce = 0  # 1.0.4: a counter, never reused
        self.band_free_at: dict[str, float] = {}
        self.pending: AirTx | None = None  # confirmed uplink awaiting its ACK
        self.joining_nonce: int | None = None
        self.tx_power = 0  # TXPower index
        self.mac_out = b""  # MAC answers for the next uplink's FOpts
        self.stats = DeviceStats()

    # -- state --------------------------------------------------------------------------

    @property
    def joined(self) -> bool:
        return self.dev_addr is not None and self.nwk_s_key is not None

    @property
    def sf_bw(self) -> tuple[int, int]:
        return DR_TABLE[self.dr]

    def earliest_tx_s(self) -> float:
        """Earliest simulated time at which some enabled channel's sub-band is free."""
        return min(self.band_free_at.get(sub_band(f), 0.0) for f in self.channels)

    def _pick_channel(self, now_s: float) -> int | None:
        free = [f for f in self.channels if self.band_free_at.get(sub_band(f), 0.0) <= now_s]
        if not free:
            self.stats.duty_blocked += 1
            return None
        return self.rng.choice(free)

    def _emit(
        self, phy: bytes, now_s: float, kind: str, fcnt: int | None, attempt: int, confirmed: bool
    ) -> AirTx | None:
        freq = self._pick_channel(now_s)
        if freq is None:
            return None
        sf, bw = self.sf_bw
        t_ms = airtime_ms(len(phy), sf, bw)
        band = sub_band(freq)
        # ETSI duty cycle: after T on air, the sub-band is off for T * (1/dc - 1).
        self.band_free_at[band] = now_s + (t_ms / 1000.0) / DUTY_CYCLE
        return AirTx(
            phy,
            freq,
            sf,
            bw,
            now_s,
            t_ms,
            self.dev_eui,
            fcnt,
            kind,
            attempt,
            confirmed,
            power_offset_db=-2.0 * self.tx_power,
        )

    # -- OTAA -----------------------------------------------------------------------------

    def join_request(self, now_s: float) -> AirTx | None:
        if not self.otaa or self.join_eui is None or self.app_key is None:
            raise ValueError("not an OTAA device")
        if self.earliest_tx_s() > now_s:
            self.stats.duty_blocked += 1
            return None
        nonce = self.dev_nonce
        self.dev_nonce += 1  # 1.0.4: the counter advances with every join-request sent
        self.joining_nonce = nonce
        self.channels = DEFAULT_CHANNELS_HZ
        phy = build_join_request(self.join_eui, self.dev_eui, nonce, self.app_key)
        tx = self._emit(phy, now_s, "join", None, 1, False)
        if tx is not None:
            self.stats.joins_sent += 1
        return tx

    def accept_join(self, phy: bytes) -> DownlinkResult:
        if self.app_key is None or self.joining_nonce is None:
            raise LorawanSimError("no join in progress")
        ja = open_join_accept(phy, self.app_key)
        nwk, app = derive_session_keys(self.app_key, ja.join_nonce, ja.net_id, self.joining_nonce)
        self.dev_addr, self.nwk_s_key, self.app_s_key = ja.dev_addr, nwk, app
        self.fcnt_up, self.fcnt_down, self.pending, self.joining_nonce = 0, None, None, None
        self.tx_power, self.mac_out = 0, b""  # a new session starts at full power
        extra = (
            tuple(int.from_bytes(ja.cflist[i : i + 3], "little") * 100 for i in range(0, 15, 3))
            if len(ja.cflist) == 16
            else ()
        )
        self.channels = DEFAULT_CHANNELS_HZ + tuple(f for f in extra if f)
        self.stats.joined += 1
        return DownlinkResult("join_accept")

    # -- uplinks --------------------------------------------------------------------------

    def uplink(
        self, now_s: float, f_port: int, payload: bytes, confirmed: bool = False
    ) -> AirTx | None:
        """A new uplink with the next FCnt; None when the duty cycle forbids sending now (the
        FCnt is then not consumed). A pending unacknowledged confirmed uplink is abandoned."""
        if not self.joined:
            raise LorawanSimError("device has not joined")
        if len(payload) > MAX_FRM[self.dr]:
            raise LorawanSimError(f"payload of {len(payload)} bytes exceeds DR{self.dr} maximum")
        if self.earliest_tx_s() > now_s:
            self.stats.duty_blocked += 1
            return None
        assert (
            self.dev_addr is not None and self.nwk_s_key is not None and self.app_s_key is not None
        )
        if self.pending is not None:
            self.stats.gave_up += 1
            self.pending = None
        fcnt = self.fcnt_up
        phy = build_data_frame(
            4 if confirmed else 2,
            self.dev_addr,
            fcnt,
            self.nwk_s_key,
            self.app_s_key,
            f_port=f_port,
            payload=payload,
            fopts=self.mac_out,
            adr=True,
        )
        tx = self._emit(phy, now_s, "data", fcnt, 1, confirmed)
        if tx is None:
            return None
        self.mac_out = b""
        self.fcnt_up += 1
        self.stats.uplinks += 1
        if confirmed:
            self.pending = tx
        return tx

    def retransmission(self, now_s: float) -> AirTx | None:
        """Resend the pending confirmed uplink unchanged (same FCnt, same bytes), NbTrans-style.
        None when nothing is pending, the retries are spent, or the duty cycle forbids it."""
        p = self.pending
        if p is None:
            return None
        if p.attempt >= self.nb_trans_confirmed:
            self.stats.gave_up += 1
            self.pending = None
            return None
        tx = self._emit(p.phy, now_s, "data", p.fcnt, p.attempt + 1, True)
        if tx is not None:
            self.pending = tx
            self.stats.retransmissions += 1
        return tx

    # -- downlinks ------------------------------------------------------------------------

    def on_downlink(self, phy: bytes) -> DownlinkResult:
        """A frame received in an RX window. Raises LorawanSimError when it is not for us."""
        if phy[:1] == b"\x20":
            return self.accept_join(phy)
        if not self.joined:
            raise LorawanSimError("not joined")
        assert (
            self.dev_addr is not None and self.nwk_s_key is not None and self.app_s_key is not None
        )
        if len(phy) < 12 or phy[1:5][::-1] != self.dev_addr:
            raise LorawanSimError("not addressed to this device")
        hint = 0 if self.fcnt_down is None else self.fcnt_down + 1
        try:
            f: DataFrame = open_data_frame(phy, self.nwk_s_key, self.app_s_key, hint)
        except LorawanSimError:
            self.stats.bad_downlinks += 1
            raise
        if f.mtype not in (3, 5):
            raise LorawanSimError("not a downlink")
        self.fcnt_down = f.fcnt32
        self.stats.downlinks += 1
        self._apply_mac(f.payload if f.f_port == 0 else f.fopts)
        if f.ack and self.pending is not None:
            self.pending = None
            self.stats.acks += 1
        return DownlinkResult("data", ack=f.ack, f_port=f.f_port, payload=f.payload)

    def _apply_mac(self, cmds: bytes) -> None:
        """Act on the network's MAC commands as a 1.0.4 stack does: LinkADRReq sets the data
        rate and TX power (answered with LinkADRAns in the next uplink); answers to our own
        requests are skipped; an unknown CID ends the walk."""
        i = 0
        while i < len(cmds):
            cid = cmds[i]
            n = DOWN_MAC_LEN.get(cid)
            if n is None or i + 1 + n > len(cmds):
                return
            if cid == 0x03:
                dr, power = cmds[i + 1] >> 4, cmds[i + 1] & 0x0F
                cntl = (cmds[i + 4] >> 4) & 0x07
                dr_ok, power_ok, mask_ok = (
                    dr in DR_TABLE and dr <= 5,
                    power <= MAX_TX_POWER_INDEX,
                    cntl in (0, 6),
                )
                if dr_ok and power_ok and mask_ok:
                    if (dr, power) != (self.dr, self.tx_power):
                        self.stats.adr_changes += 1
                    self.dr, self.tx_power = dr, power
                self.mac_out = bytes((0x03, power_ok << 2 | dr_ok << 1 | mask_ok))  # latest only
            i += 1 + n
