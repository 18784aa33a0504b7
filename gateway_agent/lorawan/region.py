"""Regional parameters in one table keyed by region name, and class-A downlink timing. Pure.

EU868 from LORAWAN.md 10 and GWMP.md 5. Other regions are new table rows; note US915/AU915
need their own RX1 frequency rule (500 kHz downlink channels), see `rx1_window`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway_agent.errors import FrameError
from gateway_agent.lorawan.radio import DownlinkTx, RxInfo


@dataclass(frozen=True, slots=True)
class DataRate:
    dr: int
    modulation: str  # "LORA" | "FSK"
    sf: int | None
    bw_khz: int | None
    bitrate: int  # bit/s
    max_mac_payload: int  # M; the largest PHYPayload is M + 5

    @property
    def max_frm_payload(self) -> int:
        """N: the largest FRMPayload without FOpts (M - 8)."""
        return self.max_mac_payload - 8

    @property
    def max_phy_payload(self) -> int:
        return self.max_mac_payload + 5


@dataclass(frozen=True, slots=True)
class SubBand:
    name: str
    min_hz: int
    max_hz: int
    duty_cycle: float  # fraction of time, e.g. 0.01

    def contains(self, freq_hz: int) -> bool:
        return self.min_hz <= freq_hz <= self.max_hz


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    data_rates: tuple[DataRate, ...]
    default_channels_hz: tuple[int, ...]
    extra_channels_hz: tuple[int, ...]  # the usual CFList
    rx2_freq_hz: int
    rx2_dr: int
    receive_delay1_s: int
    receive_delay2_s: int
    join_accept_delay1_s: int
    join_accept_delay2_s: int
    max_eirp_dbm: int
    sub_bands: tuple[SubBand, ...]
    max_rx1_dr_offset: int = 5
    downlink_code_rate: str = "4/5"
    adr_max_dr: int = 5  # the fastest data rate ADR moves a device to (125 kHz channels)
    max_tx_power_index: int = 7  # TXPower indexes 0 (max EIRP) .. this, 2 dB a step

    def data_rate(self, dr: int) -> DataRate:
        for d in self.data_rates:
            if d.dr == dr:
                return d
        raise FrameError(f"{self.name} has no DR{dr}", reason="unknown_dr")

    @property
    def duty_cycle_limits(self) -> dict[str, float]:
        """Sub-band name -> duty-cycle fraction, for `airtime.DutyCycleTracker`."""
        return {b.name: b.duty_cycle for b in self.sub_bands}

    def sub_band(self, freq_hz: int) -> SubBand | None:
        for b in self.sub_bands:
            if b.contains(freq_hz):
                return b
        return None


EU868 = Region(
    name="EU868",
    data_rates=(
        DataRate(0, "LORA", 12, 125, 250, 59),
        DataRate(1, "LORA", 11, 125, 440, 59),
        DataRate(2, "LORA", 10, 125, 980, 59),
        DataRate(3, "LORA", 9, 125, 1760, 123),
        DataRate(4, "LORA", 8, 125, 3125, 230),
        DataRate(5, "LORA", 7, 125, 5470, 230),
        DataRate(6, "LORA", 7, 250, 11000, 230),
        DataRate(7, "FSK", None, None, 50000, 230),
    ),
    default_channels_hz=(868_100_000, 868_300_000, 868_500_000),
    extra_channels_hz=(867_100_000, 867_300_000, 867_500_000, 867_700_000, 867_900_000),
    rx2_freq_hz=869_525_000,
    rx2_dr=0,
    receive_delay1_s=1,
    receive_delay2_s=2,
    join_accept_delay1_s=5,
    join_accept_delay2_s=6,
    max_eirp_dbm=16,
    sub_bands=(
        SubBand("g", 863_000_000, 867_999_999, 0.01),  # 867.x CFList channels (ETSI g)
        SubBand("g1", 868_000_000, 868_600_000, 0.01),  # default channels, RX1
        SubBand("g2", 868_700_000, 869_200_000, 0.001),
        SubBand("g3", 869_400_000, 869_650_000, 0.10),  # RX2
        SubBand("g4", 869_700_000, 870_000_000, 0.01),
    ),
)

REGIONS: dict[str, Region] = {EU868.name: EU868}


def dr_from_sf_bw(region: Region, sf: int, bw_khz: int) -> int:
    """The LoRa data rate index for (SF, BW); raises `FrameError` (reason "unknown_dr")."""
    for d in region.data_rates:
        if d.modulation == "LORA" and d.sf == sf and d.bw_khz == bw_khz:
            return d.dr
    raise FrameError(f"{region.name} has no DR for SF{sf}BW{bw_khz}", reason="unknown_dr")


def sf_bw_from_dr(region: Region, dr: int) -> tuple[int, int]:
    """(SF, BW kHz) of a LoRa data rate; raises `FrameError` for FSK or unknown DRs."""
    d = region.data_rate(dr)
    if d.sf is None or d.bw_khz is None:
        raise FrameError(f"{region.name} DR{dr} is not LoRa", reason="unknown_dr")
    return d.sf, d.bw_khz


def uplink_dr(region: Region, rx: RxInfo) -> int:
    """The data rate of a reception record."""
    if rx.modulation == "FSK":
        for d in region.data_rates:
            if d.modulation == "FSK" and d.bitrate == rx.bitrate:
                return d.dr
        raise FrameError(f"{region.name} has no FSK DR at {rx.bitrate} bit/s", reason="unknown_dr")
    if rx.sf is None or rx.bw_khz is None:
        raise FrameError("reception without SF/BW", reason="unknown_dr")
    return dr_from_sf_bw(region, rx.sf, rx.bw_khz)


def rx1_window(
    region: Region, uplink_freq_hz: int, uplink_dr: int, rx1_dr_offset: int
) -> tuple[int, int]:
    """(freq_hz, dr) of RX1: EU868 uses the uplink frequency, DR = max(0, DR - offset)."""
    if not 0 <= rx1_dr_offset <= region.max_rx1_dr_offset:
        raise ValueError(f"RX1DROffset must be 0..{region.max_rx1_dr_offset}")
    region.data_rate(uplink_dr)
    return uplink_freq_hz, max(0, uplink_dr - rx1_dr_offset)


def rx2_window(
    region: Region, rx2_freq_hz: int | None = None, rx2_dr: int | None = None
) -> tuple[int, int]:
    """(freq_hz, dr) of RX2: the region default unless configured."""
    return (
        region.rx2_freq_hz if rx2_freq_hz is None else rx2_freq_hz,
        region.rx2_dr if rx2_dr is None else rx2_dr,
    )


def schedule_tx(
    region: Region,
    rx: RxInfo,
    phy: bytes,
    *,
    delay_s: int,
    freq_hz: int,
    dr: int,
    power_dbm: int = 14,
    purpose: str = "data",
    dev_eui: bytes | None = None,
) -> DownlinkTx:
    """A class-A downlink through the gateway that heard `rx`: tmst = (rx.tmst + delay) mod 2^32.

    Raises `FrameError` (reason "no_tmst") for a reception without a concentrator counter (serial
    modems), and reason "unknown_dr" for a non-LoRa downlink data rate.
    """
    if rx.tmst is None:
        raise FrameError("the reception has no tmst: cannot schedule class A", reason="no_tmst")
    sf, bw = sf_bw_from_dr(region, dr)
    return DownlinkTx(
        gateway_id=rx.gateway_id,
        phy_payload=phy,
        freq_hz=freq_hz,
        sf=sf,
        bw_khz=bw,
        tmst=(rx.tmst + delay_s * 1_000_000) & 0xFFFFFFFF,
        power_dbm=power_dbm,
        code_rate=region.downlink_code_rate,
        rf_chain=0,
        dev_eui=dev_eui,
        purpose=purpose,
    )


def rx1_tx(
    region: Region,
    rx: RxInfo,
    phy: bytes,
    *,
    rx1_delay_s: int = 1,
    rx1_dr_offset: int = 0,
    power_dbm: int = 14,
    purpose: str = "data",
    dev_eui: bytes | None = None,
) -> DownlinkTx:
    """RX1 of a data uplink: uplink tmst + RxDelay (0 means 1 s)."""
    freq, dr = rx1_window(region, rx.freq_hz, uplink_dr(region, rx), rx1_dr_offset)
    return schedule_tx(
        region,
        rx,
        phy,
        delay_s=max(1, rx1_delay_s),
        freq_hz=freq,
        dr=dr,
        power_dbm=power_dbm,
        purpose=purpose,
        dev_eui=dev_eui,
    )


def rx2_tx(
    region: Region,
    rx: RxInfo,
    phy: bytes,
    *,
    rx1_delay_s: int = 1,
    rx2_freq_hz: int | None = None,
    rx2_dr: int | None = None,
    power_dbm: int = 14,
    purpose: str = "data",
    dev_eui: bytes | None = None,
) -> DownlinkTx:
    """RX2 of a data uplink: one second after RX1, on the RX2 frequency and data rate."""
    freq, dr = rx2_window(region, rx2_freq_hz, rx2_dr)
    return schedule_tx(
        region,
        rx,
        phy,
        delay_s=max(1, rx1_delay_s) + 1,
        freq_hz=freq,
        dr=dr,
        power_dbm=power_dbm,
        purpose=purpose,
        dev_eui=dev_eui,
    )


DOWNLINK_LEAD_S = 0.1  # a PULL_RESP should reach the gateway this long before its window


def with_deadline(tx: DownlinkTx, rx: RxInfo, delay_s: int, window: str) -> DownlinkTx:
    """`tx` marked with its window and the agent-clock time it must be sent by: the uplink's
    reception (`rx.rx_mono`) plus the window's delay, less DOWNLINK_LEAD_S."""
    return replace(tx, window=window, send_by=rx.rx_mono + delay_s - DOWNLINK_LEAD_S)


def class_a_tx(
    region: Region,
    rx: RxInfo,
    phy: bytes,
    *,
    rx1_delay_s: int = 1,
    rx1_dr_offset: int = 0,
    rx2_freq_hz: int | None = None,
    rx2_dr: int | None = None,
    power_dbm: int = 14,
    purpose: str = "data",
    dev_eui: bytes | None = None,
) -> DownlinkTx:
    """A data downlink for RX1 of the uplink `rx`, carrying the same frame for RX2 as its
    `fallback` (LORAWAN.md 7.5, GWMP.md 5: decide quickly, RX2 as the fallback)."""
    delay = max(1, rx1_delay_s)
    second = rx2_tx(
        region,
        rx,
        phy,
        rx1_delay_s=delay,
        rx2_freq_hz=rx2_freq_hz,
        rx2_dr=rx2_dr,
        power_dbm=power_dbm,
        purpose=purpose,
        dev_eui=dev_eui,
    )
    second = with_deadline(second, rx, delay + 1, "rx2")
    try:
        first = rx1_tx(
            region,
            rx,
            phy,
            rx1_delay_s=delay,
            rx1_dr_offset=rx1_dr_offset,
            power_dbm=power_dbm,
            purpose=purpose,
            dev_eui=dev_eui,
        )
    except FrameError:
        return second  # RX1 would be FSK (an FSK uplink): LoRa downlinks only, so RX2 alone
    return replace(with_deadline(first, rx, delay, "rx1"), fallback=second)


def join_accept_tx(
    region: Region,
    rx: RxInfo,
    phy: bytes,
    *,
    rx2: bool = False,
    power_dbm: int = 14,
    dev_eui: bytes | None = None,
) -> DownlinkTx:
    """A join-accept: RX1 at JOIN_ACCEPT_DELAY1 on the join-request's frequency and DR, or
    (rx2=True) RX2 at JOIN_ACCEPT_DELAY2 on the region's default RX2 (the device has no other
    settings yet)."""
    if rx2:
        freq, dr = region.rx2_freq_hz, region.rx2_dr
        delay = region.join_accept_delay2_s
    else:
        freq, dr = rx.freq_hz, uplink_dr(region, rx)
        delay = region.join_accept_delay1_s
    return schedule_tx(
        region,
        rx,
        phy,
        delay_s=delay,
        freq_hz=freq,
        dr=dr,
        power_dbm=power_dbm,
        purpose="join_accept",
        dev_eui=dev_eui,
    )


def join_accept_windows(
    region: Region, rx: RxInfo, phy: bytes, *, power_dbm: int = 14, dev_eui: bytes | None = None
) -> DownlinkTx:
    """A join-accept for RX1 (JOIN_ACCEPT_DELAY1) with RX2 (JOIN_ACCEPT_DELAY2, the region's
    default RX2) as its fallback."""
    first = join_accept_tx(region, rx, phy, power_dbm=power_dbm, dev_eui=dev_eui)
    second = join_accept_tx(region, rx, phy, rx2=True, power_dbm=power_dbm, dev_eui=dev_eui)
    return replace(
        with_deadline(first, rx, region.join_accept_delay1_s, "rx1"),
        fallback=with_deadline(second, rx, region.join_accept_delay2_s, "rx2"),
    )
