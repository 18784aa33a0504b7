"""The frozen `Config` tree: one dataclass per TOML section (the public config contract)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from decoders.ttnrepo import CodecSettings
from gateway_agent.reports.settings import ReportSettings
from gateway_agent.web.settings import WebSettings

SERIAL_FORMATS = ("rn2483", "rui3", "lora-e5")
SERIAL_DEFAULT_BAUD = {"rn2483": 57600, "rui3": 115200, "lora-e5": 9600}


@dataclass(frozen=True, slots=True)
class AgentConfig:
    gateway_id: str
    state_dir: Path
    devices_file: Path | None = None
    log_level: str = "INFO"
    frame_queue: int = 10000
    control_socket: Path | None = None  # default: state_dir / "control.sock"
    control_group: str | None = None  # group for the control socket (mode 0660)

    @property
    def db_path(self) -> Path:
        return self.state_dir / "agent.db"

    @property
    def control_path(self) -> Path:
        return self.control_socket or (self.state_dir / "control.sock")


@dataclass(frozen=True, slots=True)
class LorawanConfig:
    region: str = "EU868"
    net_id: bytes = b"\x00\x00\x00"
    dev_addr_prefix: bytes = b"\x00"  # high byte(s) of allocated DevAddrs; NwkID for NetID type 0
    max_fcnt_gap: int = 16384
    dedup_window_ms: int = 200
    rx1_delay_s: int = 1
    rx1_dr_offset: int = 0
    rx2_freq_hz: int | None = None  # None: the region default
    rx2_dr: int | None = None
    downlink_power_dbm: int = 14
    adr: bool = True  # network-side ADR for devices that set the ADR bit
    adr_margin_db: float = 10.0  # installation margin kept above the demodulation floor
    # "edge": this agent is the network server; "passive": a central server owns joins, ACKs,
    # ADR, MAC and downlinks, and the agent sends none of its own (it relays, decodes, alerts)
    mode: str = "edge"


@dataclass(frozen=True, slots=True)
class GwmpSourceConfig:
    listen: tuple[tuple[str, int], ...]
    name: str = ""
    downlink: bool = True
    route_stale_s: float = 30.0
    type: str = "gwmp"


@dataclass(frozen=True, slots=True)
class SerialSourceConfig:
    port: str
    format: str
    baudrate: int
    name: str = ""
    freq_hz: int = 868_100_000
    sf: int = 7
    bw_khz: int = 125
    code_rate: str = "4/5"
    reopen_max_s: float = 30.0
    type: str = "serial"

    @property
    def gateway_id(self) -> str:
        return f"serial:{self.port}"


SourceConfig = GwmpSourceConfig | SerialSourceConfig


@dataclass(frozen=True, slots=True)
class StoreConfig:
    synchronous: str = "FULL"  # FULL | NORMAL
    commit_interval_ms: int = 50  # commits at most this often: docs/commit-policy.md
    commit_rows: int = 500
    max_db_mb: float = 512.0
    retention_days: float = 400.0  # a year of monthly reports; the disk cap bounds it
    quick_check_on_start: bool = True


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "gateway-agent"
    format: str = "json"  # json | cbor
    enabled: bool = True
    client_id: str = ""
    username: str | None = None
    password_file: Path | None = None
    mqtt_version: str = "3.1.1"  # "3.1.1" | "5"
    keepalive_s: int = 30
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    inflight: int = 32
    batch_max: int = 1  # >1: CBOR batches of up to N readings per message
    batch_max_bytes: int = 16384
    rate_limit_per_s: float = 0.0  # 0 = unlimited
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    status_interval_s: float = 60.0


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Config:
    agent: AgentConfig
    sources: tuple[SourceConfig, ...]
    upstream: UpstreamConfig
    store: StoreConfig = field(default_factory=StoreConfig)
    lorawan: LorawanConfig = field(default_factory=LorawanConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    reports: ReportSettings = field(default_factory=ReportSettings)  # [reports], docs/reports.md
    web: WebSettings | None = None  # [web], docs/web.md: the console runs only when configured
    codecs: CodecSettings = field(default_factory=CodecSettings)  # [codecs], docs/decoders.md
    outputs: tuple[Any, ...] = ()  # config/outputs.py OutputConfig: [[outputs]], docs/outputs.md
    relay: Any = None  # config/outputs.py RelayConfig: [relay], docs/relay.md; None: no relay
    rules: tuple[Any, ...] = ()  # gateway_agent.rules objects, built by the rules loader
    raw_rules: tuple[Mapping[str, Any], ...] = ()
    path: Path | None = None
