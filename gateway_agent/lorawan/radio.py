"""Reception records and radio frames: what sources emit and the core consumes. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RxInfo:
    """How one gateway (or antenna, or serial modem) heard one frame.

    `gateway_id` is the gateway EUI as 16 lowercase hex digits (GWMP) or the serial source id
    (e.g. `serial:/dev/ttyUSB0`). `rx_mono` / `rx_wall` are the agent's own receive times
    (monotonic seconds, and Unix epoch seconds). `tmst` is the concentrator counter (µs, 32-bit),
    None for serial modems (no downlink possible through them).
    """

    gateway_id: str
    rx_mono: float
    rx_wall: float
    freq_hz: int
    modulation: str = "LORA"  # "LORA" | "FSK"
    sf: int | None = None
    bw_khz: int | None = None
    bitrate: int | None = None  # FSK only, bit/s
    code_rate: str | None = None
    rssi_dbm: float | None = None
    snr_db: float | None = None
    channel: int | None = None
    rf_chain: int | None = None
    board: int | None = None
    antenna: int | None = None
    tmst: int | None = None
    gw_time: str | None = None  # the gateway's own `time` string when it sent one (GPS)
    tmms: int | None = None
    source: str = ""  # name of the source that produced it, e.g. "gwmp:127.0.0.1:1700"

    def __post_init__(self) -> None:
        if self.modulation not in ("LORA", "FSK"):
            raise ValueError(f"modulation must be LORA or FSK, got {self.modulation!r}")
        if self.tmst is not None and not 0 <= self.tmst <= 0xFFFFFFFF:
            raise ValueError("tmst must be a 32-bit unsigned integer")

    @property
    def datr(self) -> str | int:
        """GWMP-style data rate: "SF7BW125" for LoRa, bit/s for FSK."""
        if self.modulation == "FSK":
            return self.bitrate or 0
        return f"SF{self.sf}BW{self.bw_khz}"


@dataclass(frozen=True, slots=True)
class RadioFrame:
    """One PHYPayload as heard by one receiver."""

    phy_payload: bytes
    rx: RxInfo

    def __post_init__(self) -> None:
        if not isinstance(self.phy_payload, bytes):
            raise TypeError("phy_payload must be bytes")


@dataclass(frozen=True, slots=True)
class DownlinkTx:
    """A downlink to transmit through one gateway (GWMP txpk). Frequencies in Hz, times in µs."""

    gateway_id: str
    phy_payload: bytes
    freq_hz: int
    sf: int
    bw_khz: int
    tmst: int | None = None  # None with immediate=True (class C)
    immediate: bool = False
    power_dbm: int = 14
    code_rate: str = "4/5"
    rf_chain: int = 0
    dev_eui: bytes | None = None
    purpose: str = "data"  # "join_accept" | "ack" | "data" | "mac" | "adr"
    extra: tuple[tuple[str, str], ...] = field(default=())
    window: str = "rx1"  # "rx1" | "rx2" | "c" (class C, immediate)
    # Monotonic time (the agent's clock, like RxInfo.rx_mono) after which a PULL_RESP can no
    # longer reach the gateway ahead of `tmst`: past it, send `fallback` instead. None: no limit.
    send_by: float | None = None
    # The same frame for the device's next receive window (RX2), for when this one cannot be
    # sent in time, has no duty-cycle budget left, or the gateway refuses it (TOO_LATE).
    fallback: DownlinkTx | None = None
    queue_seq: int | None = None  # the application-queue entry it carries (None: ACK, join)
    # Relayed downlinks ([relay], from a central network server) may also set these:
    tmms: int | None = None  # GPS time to transmit at (ms since the GPS epoch), class B
    ipol: bool = True  # LoRa IQ inversion: true for every LoRaWAN downlink
    board: int = 0  # concentrator board and antenna (txpk `brd`, `ant`; sent when not 0)
    antenna: int = 0

    def __post_init__(self) -> None:
        if self.tmst is None and self.tmms is None and not self.immediate:
            raise ValueError("a scheduled downlink needs a tmst (or tmms)")
        if self.tmst is not None:
            object.__setattr__(self, "tmst", self.tmst & 0xFFFFFFFF)
