"""TOML -> one frozen `Config` tree. Every error names the key path and what was expected.

`load_config(toml_dict, base_dir)` is pure; `read_config(path)` reads the file and calls it.
Unknown keys are rejected (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from decoders.ttnrepo import load_codec_settings
from gateway_agent.config.convert import (
    c_any,
    c_bool,
    c_choice,
    c_choice_int,
    c_hex,
    c_hostport,
    c_list,
    c_nonempty,
    c_path,
    c_str,
)
from gateway_agent.config.files import in_file, read_toml
from gateway_agent.config.outputs import load_outputs, load_relay
from gateway_agent.config.sections import (
    SERIAL_DEFAULT_BAUD,
    SERIAL_FORMATS,
    AgentConfig,
    Config,
    GwmpSourceConfig,
    LorawanConfig,
    MetricsConfig,
    SerialSourceConfig,
    SourceConfig,
    StoreConfig,
    UpstreamConfig,
)
from gateway_agent.errors import ConfigError
from gateway_agent.reports.settings import load_report_settings
from gateway_agent.tomltable import TomlTable, c_int, c_num, shown, type_name
from gateway_agent.web.settings import load_web_settings


def _agent(t: TomlTable, base: Path | None) -> AgentConfig:
    gid = t.req("gateway_id", c_nonempty)
    if any(c in gid for c in "/+# "):
        raise ConfigError(
            t.key("gateway_id"), f'must not contain "/", "+", "#" or spaces, got {shown(gid)}'
        )
    if not gid.isprintable():
        raise ConfigError(t.key("gateway_id"), "must not contain control characters")
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
        mode=t.get("mode", c_choice("edge", "passive"), "edge"),
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


def _store(t: TomlTable) -> StoreConfig:
    cfg = StoreConfig(
        synchronous=t.get("synchronous", c_choice("FULL", "NORMAL"), "FULL"),
        commit_interval_ms=t.get("commit_interval_ms", c_int(0, 10_000), 50),
        commit_rows=t.get("commit_rows", c_int(1, 100_000), 500),
        max_db_mb=t.get("max_db_mb", c_num(0.1, 1_000_000), 512.0),
        retention_days=t.get("retention_days", c_num(0, 3650), 400.0),
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
    if not cfg.topic_prefix.isprintable():
        raise ConfigError(t.key("topic_prefix"), "must not contain control characters")
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
    raw_sources: Any = root.get("sources", c_any, None) or []
    if not isinstance(raw_sources, list):
        raise ConfigError("sources", "expected an array of tables ([[sources]])")
    sources = tuple(_source(TomlTable(s, f"sources[{i}]"), i) for i, s in enumerate(raw_sources))
    names = [s.name for s in sources]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise ConfigError(f"sources[{i}].name", f"duplicate source name {shown(n)}")
    upstream = _upstream(TomlTable(root.get("upstream", lambda v, p: v, {}), "upstream"), base_dir)
    outputs = load_outputs(root.get("outputs", c_any, None) or [], base_dir, _upstream)
    if outputs and not root.has("upstream"):
        # [[outputs]] given and no [upstream]: the outputs are the only way out.
        upstream = replace(upstream, enabled=False)
    relay = (
        load_relay(TomlTable(root.get("relay", lambda v, p: v, {}), "relay"), base_dir, _upstream)
        if root.has("relay")
        else None
    )
    store = _store(TomlTable(root.get("store", lambda v, p: v, {}), "store"))
    lorawan = _lorawan(TomlTable(root.get("lorawan", lambda v, p: v, {}), "lorawan"))
    metrics = _metrics(TomlTable(root.get("metrics", lambda v, p: v, {}), "metrics"))
    reports = load_report_settings(root.get("reports", lambda v, p: v, {}))
    codecs = load_codec_settings(root.get("codecs", lambda v, p: v, None), "codecs", base_dir)
    web = (
        load_web_settings(root.get("web", lambda v, p: v, {}), base_dir)
        if root.has("web")
        else None
    )
    raw_rules: Any = root.get("rules", c_any, None) or []
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
        reports=reports,
        web=web,
        codecs=codecs,
        outputs=outputs,
        relay=relay,
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
    """Read and validate a TOML config file. Raises ConfigFileError (a ConfigError naming the
    file and the key path, or the byte offset / line of bad bytes or syntax)."""
    p = Path(path)
    doc = read_toml(p)
    try:
        return load_config(doc, base_dir=p.resolve().parent, path=p.resolve())
    except ConfigError as e:
        raise in_file(p, e) from e
