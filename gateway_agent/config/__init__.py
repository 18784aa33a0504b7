"""TOML -> one frozen `Config` tree. Every error names the key path and what was expected.

`load_config(toml_dict, base_dir)` is pure; `read_config(path)` reads the file and calls it.
Unknown keys are rejected (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from gateway_agent.errors import ConfigError
from gateway_agent.tomltable import TomlTable, type_name

T = TypeVar("T")

SERIAL_FORMATS = ("rn2483", "rui3", "lora-e5")
SERIAL_DEFAULT_BAUD = {"rn2483": 57600, "rui3": 115200, "lora-e5": 9600}


# --------------------------------------------------------------------------- dataclasses


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
    commit_interval_ms: int = 2000  # SD wear vs crash window: docs/store-and-forward.md
    commit_rows: int = 500
    max_db_mb: float = 512.0
    retention_days: float = 7.0
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
    rules: tuple[Any, ...] = ()  # gateway_agent.rules objects, built by the rules loader
    raw_rules: tuple[Mapping[str, Any], ...] = ()
    path: Path | None = None


# --------------------------------------------------------------------------- helpers


def _c_any(v: Any, p: str) -> Any:
    return v


def c_str(v: Any, p: str) -> str:
    if not isinstance(v, str):
        raise ConfigError(p, f"expected a string, got {type_name(v)}")
    return v


def c_nonempty(v: Any, p: str) -> str:
    s = c_str(v, p)
    if not s.strip():
        raise ConfigError(p, "expected a non-empty string")
    return s


def c_bool(v: Any, p: str) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(p, f"expected true or false, got {type_name(v)}")
    return v


def c_int(lo: int, hi: int) -> Callable[[Any, str], int]:
    def conv(v: Any, p: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(p, f"expected an integer {lo}-{hi}, got {type_name(v)}")
        return v

    return conv


def c_num(lo: float, hi: float) -> Callable[[Any, str], float]:
    def conv(v: Any, p: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ConfigError(p, f"expected a number {lo:g}-{hi:g}, got {type_name(v)}")
        return float(v)

    return conv


def c_choice(*choices: str) -> Callable[[Any, str], str]:
    def conv(v: Any, p: str) -> str:
        if not isinstance(v, str) or v not in choices:
            raise ConfigError(p, f"expected one of {' | '.join(choices)}, got {type_name(v)}")
        return v

    return conv


def c_hex(n: int | None) -> Callable[[Any, str], bytes]:
    def conv(v: Any, p: str) -> bytes:
        b = parse_hex(v, p)
        if n is not None and len(b) != n:
            raise ConfigError(p, f"expected {n} bytes of hex ({2 * n} digits), got {len(b)} bytes")
        return b

    return conv


def parse_hex(v: Any, p: str = "") -> bytes:
    """Hex in any case, with or without separators (space, ':', '-', '_'), optional 0x."""
    if not isinstance(v, str):
        raise ConfigError(p, f"expected a hex string, got {type_name(v)}")
    s = v.strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    for sep in (" ", ":", "-", "_", "\t"):
        s = s.replace(sep, "")
    try:
        if len(s) % 2:
            raise ValueError
        return bytes.fromhex(s)
    except ValueError:
        # Never echo the value: in a key field that would put most of a key in the journal.
        raise ConfigError(
            p, f"expected hex digits, got {len(v)} characters that are not all hex"
        ) from None


def c_hostport(v: Any, p: str) -> tuple[str, int]:
    if not isinstance(v, str) or ":" not in v:
        raise ConfigError(p, f'expected "host:port", got {type_name(v)}')
    host, _, port_s = v.rpartition(":")
    host = host.strip("[]")
    if not host or not port_s.isdigit() or not 0 <= int(port_s) <= 65535:
        raise ConfigError(p, f'expected "host:port" with a port 0-65535, got "{v}"')
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(p, f'expected an IP address or localhost, got "{host}"') from None
        host = "127.0.0.1"
    return host, int(port_s)


def c_path(base: Path | None) -> Callable[[Any, str], Path]:
    def conv(v: Any, p: str) -> Path:
        s = c_nonempty(v, p)
        path = Path(s).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        return path

    return conv


def c_list(item: Callable[[Any, str], T]) -> Callable[[Any, str], tuple[T, ...]]:
    def conv(v: Any, p: str) -> tuple[T, ...]:
        if not isinstance(v, list):
            raise ConfigError(p, f"expected an array, got {type_name(v)}")
        return tuple(item(x, f"{p}[{i}]") for i, x in enumerate(v))

    return conv


# --------------------------------------------------------------------------- sections


def _agent(t: TomlTable, base: Path | None) -> AgentConfig:
    gid = t.req("gateway_id", c_nonempty)
    if any(c in gid for c in "/+# "):
        raise ConfigError(
            t.key("gateway_id"), f'must not contain "/", "+", "#" or spaces, got "{gid}"'
        )
    cfg = AgentConfig(
        gateway_id=gid,
        state_dir=t.get("state_dir", c_path(base), Path("/var/lib/gateway-agent")),
        devices_file=t.get("devices_file", c_path(base), None),
        log_level=t.get("log_level", c_choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        frame_queue=t.get("frame_queue", c_int(16, 10_000_000), 10000),
        control_socket=t.get("control_socket", c_path(base), None),
        control_group=t.get("control_group", c_nonempty, None),
    )
    t.done()
    return cfg


def _lorawan(t: TomlTable) -> LorawanConfig:
    cfg = LorawanConfig(
        region=t.get("region", c_choice("EU868"), "EU868"),
        net_id=t.get("net_id", c_hex(3), b"\x00\x00\x00"),
        dev_addr_prefix=t.get("dev_addr_prefix", c_hex(None), b"\x00"),
        max_fcnt_gap=t.get("max_fcnt_gap", c_int(1, 65535), 16384),
        dedup_window_ms=t.get("dedup_window_ms", c_int(0, 2000), 200),
        rx1_delay_s=t.get("rx1_delay_s", c_int(1, 15), 1),
        rx1_dr_offset=t.get("rx1_dr_offset", c_int(0, 5), 0),
        rx2_freq_hz=t.get("rx2_freq_hz", c_int(100_000_000, 1_000_000_000), None),
        rx2_dr=t.get("rx2_dr", c_int(0, 15), None),
        downlink_power_dbm=t.get("downlink_power_dbm", c_int(0, 30), 14),
        adr=t.get("adr", c_bool, True),
        adr_margin_db=t.get("adr_margin_db", c_num(0, 30), 10.0),
    )
    if not 1 <= len(cfg.dev_addr_prefix) <= 3:
        raise ConfigError(t.key("dev_addr_prefix"), "expected 1 to 3 bytes of hex")
    t.done()
    return cfg


def _source(t: TomlTable, i: int) -> SourceConfig:
    typ = t.req("type", c_choice("gwmp", "serial"))
    if typ == "gwmp":
        raw = t.data.get("listen", "127.0.0.1:1700")
        t.seen.add("listen")
        if isinstance(raw, list):
            listen = c_list(c_hostport)(raw, t.key("listen"))
            if not listen:
                raise ConfigError(t.key("listen"), "expected at least one address")
        else:
            listen = (c_hostport(raw, t.key("listen")),)
        g = GwmpSourceConfig(
            listen=listen,
            name=t.get("name", c_nonempty, f"gwmp{i}"),
            downlink=t.get("downlink", c_bool, True),
            route_stale_s=t.get("route_stale_s", c_num(1, 3600), 30.0),
        )
        t.done()
        return g
    fmt = t.req("format", c_choice(*SERIAL_FORMATS))
    s = SerialSourceConfig(
        port=t.req("port", c_nonempty),
        format=fmt,
        baudrate=t.get("baudrate", c_int(1200, 4_000_000), SERIAL_DEFAULT_BAUD[fmt]),
        name=t.get("name", c_nonempty, f"serial{i}"),
        freq_hz=t.get("freq_hz", c_int(100_000_000, 1_000_000_000), 868_100_000),
        sf=t.get("sf", c_int(5, 12), 7),
        bw_khz=t.get("bw_khz", c_choice_int(125, 250, 500), 125),
        code_rate=t.get("code_rate", c_choice("4/5", "4/6", "4/7", "4/8"), "4/5"),
        reopen_max_s=t.get("reopen_max_s", c_num(0.1, 3600), 30.0),
    )
    t.done()
    return s


def c_choice_int(*choices: int) -> Callable[[Any, str], int]:
    def conv(v: Any, p: str) -> int:
        if isinstance(v, bool) or v not in choices:
            raise ConfigError(
                p, f"expected one of {', '.join(map(str, choices))}, got {type_name(v)}"
            )
        return int(v)

    return conv


def _store(t: TomlTable) -> StoreConfig:
    cfg = StoreConfig(
        synchronous=t.get("synchronous", c_choice("FULL", "NORMAL"), "FULL"),
        commit_interval_ms=t.get("commit_interval_ms", c_int(0, 10_000), 2000),
        commit_rows=t.get("commit_rows", c_int(1, 100_000), 500),
        max_db_mb=t.get("max_db_mb", c_num(0.1, 1_000_000), 512.0),
        retention_days=t.get("retention_days", c_num(0, 3650), 7.0),
        quick_check_on_start=t.get("quick_check_on_start", c_bool, True),
    )
    t.done()
    return cfg


def _upstream(t: TomlTable, base: Path | None) -> UpstreamConfig:
    cfg = UpstreamConfig(
        host=t.get("host", c_nonempty, "127.0.0.1"),
        port=t.get("port", c_int(1, 65535), 1883),
        topic_prefix=t.get("topic_prefix", c_nonempty, "gateway-agent"),
        format=t.get("format", c_choice("json", "cbor"), "json"),
        enabled=t.get("enabled", c_bool, True),
        client_id=t.get("client_id", c_str, ""),
        username=t.get("username", c_nonempty, None),
        password_file=t.get("password_file", c_path(base), None),
        mqtt_version=t.get("mqtt_version", c_choice("3.1.1", "5"), "3.1.1"),
        keepalive_s=t.get("keepalive_s", c_int(5, 3600), 30),
        tls=t.get("tls", c_bool, False),
        ca_file=t.get("ca_file", c_path(base), None),
        cert_file=t.get("cert_file", c_path(base), None),
        key_file=t.get("key_file", c_path(base), None),
        tls_insecure=t.get("tls_insecure", c_bool, False),
        inflight=t.get("inflight", c_int(1, 65535), 32),
        batch_max=t.get("batch_max", c_int(1, 10_000), 1),
        batch_max_bytes=t.get("batch_max_bytes", c_int(256, 256 * 1024 * 1024), 16384),
        rate_limit_per_s=t.get("rate_limit_per_s", c_num(0, 1e9), 0.0),
        backoff_initial_s=t.get("backoff_initial_s", c_num(0.01, 3600), 1.0),
        backoff_max_s=t.get("backoff_max_s", c_num(0.01, 86400), 60.0),
        status_interval_s=t.get("status_interval_s", c_num(1, 86400), 60.0),
    )
    if (cfg.cert_file is None) != (cfg.key_file is None):
        raise ConfigError(t.key("cert_file"), "cert_file and key_file go together (mutual TLS)")
    if (cfg.ca_file or cfg.cert_file) and not cfg.tls:
        raise ConfigError(t.key("tls"), "ca_file/cert_file are set but tls = false")
    if any(c in cfg.topic_prefix for c in "+#"):
        raise ConfigError(t.key("topic_prefix"), "must not contain MQTT wildcards + or #")
    t.done()
    return cfg


def _metrics(t: TomlTable) -> MetricsConfig:
    cfg = MetricsConfig(listen=t.get("listen", c_hostport, None))
    t.done()
    return cfg


def load_config(
    doc: Mapping[str, Any], base_dir: Path | None = None, path: Path | None = None
) -> Config:
    """Build the frozen Config tree from a parsed TOML document. Raises ConfigError."""
    root = TomlTable(dict(doc), "")
    agent = _agent(TomlTable(root.req("agent", lambda v, p: v), "agent"), base_dir)
    raw_sources: Any = root.get("sources", _c_any, None) or []
    if not isinstance(raw_sources, list):
        raise ConfigError("sources", "expected an array of tables ([[sources]])")
    sources = tuple(_source(TomlTable(s, f"sources[{i}]"), i) for i, s in enumerate(raw_sources))
    names = [s.name for s in sources]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise ConfigError(f"sources[{i}].name", f'duplicate source name "{n}"')
    upstream = _upstream(TomlTable(root.get("upstream", lambda v, p: v, {}), "upstream"), base_dir)
    store = _store(TomlTable(root.get("store", lambda v, p: v, {}), "store"))
    lorawan = _lorawan(TomlTable(root.get("lorawan", lambda v, p: v, {}), "lorawan"))
    metrics = _metrics(TomlTable(root.get("metrics", lambda v, p: v, {}), "metrics"))
    raw_rules: Any = root.get("rules", _c_any, None) or []
    if not isinstance(raw_rules, list):
        raise ConfigError("rules", "expected an array of tables ([[rules]])")
    for i, r in enumerate(raw_rules):
        if not isinstance(r, dict):
            raise ConfigError(f"rules[{i}]", f"expected a table, got {type_name(r)}")
    rules = _load_rules(raw_rules)
    root.done()
    return Config(
        agent=agent,
        sources=sources,
        upstream=upstream,
        store=store,
        lorawan=lorawan,
        metrics=metrics,
        rules=rules,
        raw_rules=tuple(raw_rules),
        path=path,
    )


def _load_rules(raw: list[dict[str, Any]]) -> tuple[Any, ...]:
    """Delegates to the rules package when it provides a loader (it raises ConfigError)."""
    try:
        from gateway_agent.rules.config import load_rules
    except ImportError:  # rules package not built yet
        if raw:
            raise ConfigError("rules", "rules are not supported by this build") from None
        return ()
    return tuple(load_rules(raw))


def read_config(path: str | Path) -> Config:
    """Read and validate a TOML config file. Raises ConfigError (the path is in the message)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError("", f"{p}: cannot read: {e.strerror or e}") from e
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("", f"{p}: not valid TOML: {e}") from e
    return load_config(doc, base_dir=p.resolve().parent, path=p.resolve())


# --------------------------------------------------------------------------- devices file


def _c_table(v: Any, p: str) -> dict[str, Any]:
    return TomlTable(v, p).data


DEVICE_KEYS_SECRET = ("nwk_s_key", "app_s_key", "app_key")


def load_devices(doc: Mapping[str, Any]) -> list[Any]:
    """`[[device]]` tables -> `Device`s. Errors name the key path (`device[2].dev_addr`)."""
    from gateway_agent.model import DEVICE_CLASSES, Device
    from gateway_agent.secret import Secret

    root = TomlTable(dict(doc), "")
    raw: Any = root.get("device", _c_any, None) or []
    root.done()
    if not isinstance(raw, list):
        raise ConfigError("device", "expected an array of tables ([[device]])")
    out: list[Device] = []
    seen: dict[bytes, int] = {}
    for i, d in enumerate(raw):
        t = TomlTable(d, f"device[{i}]")
        dev_eui = t.req("dev_eui", c_hex(8))
        if dev_eui in seen:
            raise ConfigError(t.key("dev_eui"), f"duplicate of device[{seen[dev_eui]}]")
        seen[dev_eui] = i
        settings: dict[str, Any] = t.get("settings", _c_table, {})

        def key(name: str, t: TomlTable = t) -> Secret | None:
            b = t.get(name, c_hex(16), None)
            return Secret(b) if b is not None else None

        dev = dict(
            dev_eui=dev_eui,
            name=t.get("name", c_str, ""),
            device_class=t.get("class", c_choice(*DEVICE_CLASSES), "other"),
            codec=t.get("codec", c_nonempty, None),
            tags=t.get("tags", c_list(c_nonempty), tuple[str, ...]()),
            settings=settings,
            dev_addr=t.get("dev_addr", c_hex(4), None),
            nwk_s_key=key("nwk_s_key"),
            app_s_key=key("app_s_key"),
            join_eui=t.get("join_eui", c_hex(8), None),
            app_key=key("app_key"),
            relaxed_fcnt=t.get("relaxed_fcnt", c_bool, False),
        )
        abp = [k for k in ("dev_addr", "nwk_s_key", "app_s_key") if dev[k] is not None]
        otaa = [k for k in ("join_eui", "app_key") if dev[k] is not None]
        if abp and otaa:
            raise ConfigError(
                t.key(otaa[0]),
                "a device is either ABP (dev_addr, nwk_s_key, app_s_key) or OTAA (join_eui, app_key), not both",
            )
        if abp and len(abp) != 3:
            missing = next(k for k in ("dev_addr", "nwk_s_key", "app_s_key") if dev[k] is None)
            raise ConfigError(t.key(missing), "is required for an ABP device")
        if otaa and len(otaa) != 2:
            missing = next(k for k in ("join_eui", "app_key") if dev[k] is None)
            raise ConfigError(t.key(missing), "is required for an OTAA device")
        if not abp and not otaa:
            raise ConfigError(
                t.key("dev_addr"),
                "expected ABP keys (dev_addr, nwk_s_key, app_s_key) or OTAA keys (join_eui, app_key)",
            )
        t.done()
        if settings:
            from decoders import check_settings

            check_settings(settings, t.key("settings"))
        out.append(Device(**dev))  # type: ignore[arg-type]
    return out


def check_secret_file(path: Path, key_path: str) -> None:
    """Invariant 6: refuse a key file that other users can read."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise ConfigError(key_path, f"{path}: cannot read: {e.strerror}") from e
    if mode & 0o004:
        raise ConfigError(
            key_path,
            f"{path} holds keys and is world-readable (mode {mode & 0o777:o}); run: chmod 600 {path}",
        )


def read_devices(path: str | Path, key_path: str = "agent.devices_file") -> list[Any]:
    p = Path(path)
    check_secret_file(p, key_path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(key_path, f"{p}: cannot read: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(key_path, f"{p}: not valid TOML: {e}") from e
    try:
        return load_devices(doc)
    except ConfigError as e:
        raise ConfigError(f"{p.name}:{e.key_path}", e.detail) from None
