"""`[[outputs]]` and `[relay]` -> frozen settings (the public contract of issues #20 and #17).

Each output has a `name`, a `type` and its type's keys; MQTT-based types (mqtt, homeassistant,
azure-iothub, aws-iot) take `[upstream]`'s connection keys. Unknown keys are refused.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_agent.config.convert import c_bool, c_choice, c_list, c_nonempty, c_path
from gateway_agent.config.sections import Config, UpstreamConfig
from gateway_agent.errors import ConfigError
from gateway_agent.tomltable import TomlTable, c_int, c_num, shown, type_name

OUTPUT_TYPES = ("mqtt", "homeassistant", "influxdb", "webhook", "azure-iothub", "aws-iot")
MQTT_TYPES = ("mqtt", "homeassistant", "azure-iothub", "aws-iot")
KINDS = ("up", "alert", "event")
RELAY_OUTPUT = "relay"  # the relay's lane in the output queue: no output may take this name
UPSTREAM_LANE = "upstream"  # [upstream]'s place among the outputs (`upstream_in_lane`)
# The keys an MQTT-based output shares with [upstream] (its connection and pacing).
MQTT_KEYS = (
    "host",
    "port",
    "topic_prefix",
    "client_id",
    "username",
    "password_file",
    "mqtt_version",
    "keepalive_s",
    "tls",
    "ca_file",
    "cert_file",
    "key_file",
    "tls_insecure",
    "inflight",
    "rate_limit_per_s",
    "backoff_initial_s",
    "backoff_max_s",
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True, slots=True)
class OutputConfig:
    """One `[[outputs]]` entry. Fields past `batch_max` belong to some types only."""

    name: str
    type: str
    kinds: frozenset[str] = frozenset(KINDS)  # which messages it takes
    batch_max: int = 100  # rows per delivery (an HTTP request, a burst of publishes)
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    timeout_s: float = 10.0  # one delivery (HTTP request) at most this long
    mqtt: UpstreamConfig | None = None  # the MQTT-based types' connection
    layout: str = "agent"  # mqtt: "agent" (today's topics) | "chirpstack" (v4 integration)
    application_id: str = ""  # mqtt layout chirpstack: application/{application_id}/...
    application_name: str = ""
    discovery_prefix: str = "homeassistant"  # homeassistant
    url: str = ""  # influxdb, webhook
    database: str | None = None  # influxdb 1.x (/write)
    org: str | None = None  # influxdb 2.x/3.x (/api/v2/write)
    bucket: str | None = None
    token_file: Path | None = None  # influxdb 2.x token, mode 0600
    username: str | None = None  # influxdb 1.x basic auth
    password_file: Path | None = None
    secret_file: Path | None = None  # webhook HMAC key, mode 0600
    hub: str = ""  # azure-iothub: {hub}.azure-devices.net
    device_id: str = ""
    device_key_file: Path | None = None  # azure SAS: the device's base64 key, mode 0600
    sas_ttl_s: int = 3600
    topic_template: str = ""  # aws-iot: e.g. "councils/{gateway_id}/{dev_eui}/{kind}"

    def secret_files(self) -> tuple[Path, ...]:
        """Files holding secrets: `config check` and the start refuse them unless 0600."""
        files = (self.token_file, self.password_file, self.secret_file, self.device_key_file)
        own = tuple(f for f in files if f is not None)
        if self.mqtt is not None:
            own += tuple(f for f in (self.mqtt.password_file, self.mqtt.key_file) if f)
        return own


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """`[relay]`: every frame heard goes to a central network server in its gateway protocol."""

    kind: str = "chirpstack"  # ChirpStack MQTT Forwarder protocol
    topic_prefix: str = "eu868"  # ChirpStack's region topic prefix
    json: bool = False  # protobuf (default) or protobuf's JSON mapping
    mqtt: UpstreamConfig | None = None  # None: [upstream]'s connection
    join_window_s: float = 5.0  # a join-request older than this is never relayed (counted)
    stats_interval_s: float = 30.0  # GatewayStats per radio gateway
    api_server: str | None = None  # "host:port" of ChirpStack's gRPC API (passive mode sessions)
    api_token_file: Path | None = None  # the API token, mode 0600
    api_tls: bool = False
    api_ca_file: Path | None = None
    api_refresh_s: float = 3600.0  # sessions fetched again this often
    api_lookup_per_min: int = 30  # fetches for unknown DevAddrs, at most this many a minute

    def secret_files(self) -> tuple[Path, ...]:
        own = tuple(f for f in (self.api_token_file,) if f is not None)
        if self.mqtt is not None:
            own += tuple(f for f in (self.mqtt.password_file, self.mqtt.key_file) if f)
        return own


def upstream_in_lane(cfg: Config) -> bool:
    """With `[[outputs]]` beside a JSON `[upstream]`, the upstream takes its readings, alerts
    and events from the rows the outputs share (stored once: store/fanout.py) instead of an
    outbox row of its own, so a second output costs no second copy of each body. CBOR or
    batches keep the upstream's own outbox (their bodies differ)."""
    u = cfg.upstream
    return bool(cfg.outputs) and u.enabled and u.format == "json" and u.batch_max == 1


def _mqtt(
    t: TomlTable,
    base: Path | None,
    upstream: Callable[[TomlTable, Path | None], UpstreamConfig],
    defaults: dict[str, Any],
    keys: tuple[str, ...] = MQTT_KEYS,
) -> UpstreamConfig:
    sub = {**defaults, **{k: t.data[k] for k in keys if k in t.data}}
    t.seen.update(keys)
    return upstream(TomlTable(sub, t.path), base)


def _kinds(v: Any, p: str) -> frozenset[str]:
    items = c_list(c_choice(*KINDS))(v, p)
    if not items:
        raise ConfigError(p, f"expected at least one of {' | '.join(KINDS)}")
    return frozenset(items)


TOPIC_PLACEHOLDERS = ("gateway_id", "dev_eui", "kind")


def _template(v: Any, p: str) -> str:
    """An aws-iot topic: only the known placeholders, no MQTT wildcards."""
    s = c_nonempty(v, p)
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(s) if f is not None]
    except ValueError as e:
        raise ConfigError(p, f"not a valid template: {e}") from e
    unknown = sorted({f for f in fields if f not in TOPIC_PLACEHOLDERS})
    if unknown:
        known = ", ".join("{" + k + "}" for k in TOPIC_PLACEHOLDERS)
        raise ConfigError(p, f"unknown placeholder {{{unknown[0]}}}; use {known}")
    if "+" in s or "#" in s or not s.strip("/"):
        raise ConfigError(p, "must be a topic without + or # wildcards")
    return s


def _server(v: Any, p: str) -> str:
    """ "host:port" with a DNS name or an address (gRPC's target syntax)."""
    s = c_nonempty(v, p)
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or any(c in host for c in " /"):
        raise ConfigError(p, f'expected "host:port", got {shown(s)}')
    return s


def _url(v: Any, p: str) -> str:
    s = c_nonempty(v, p)
    if not re.match(r"^https?://[^\s/?#]+", s):
        raise ConfigError(p, f"expected an http:// or https:// URL, got {shown(s)}")
    return s


def load_output(
    t: TomlTable,
    base: Path | None,
    upstream: Callable[[TomlTable, Path | None], UpstreamConfig],
) -> OutputConfig:
    name = t.req("name", c_nonempty)
    if not _NAME.match(name) or name in (RELAY_OUTPUT, UPSTREAM_LANE):
        raise ConfigError(
            t.key("name"),
            "expected lowercase letters, digits, - and _ (up to 40), not"
            f" {shown(RELAY_OUTPUT)} or {shown(UPSTREAM_LANE)}; got {shown(name)}",
        )
    typ = t.req("type", c_choice(*OUTPUT_TYPES))
    common: dict[str, Any] = dict(
        name=name,
        type=typ,
        kinds=t.get("kinds", _kinds, frozenset(KINDS)),
        batch_max=t.get("batch_max", c_int(1, 10_000), 100),
        timeout_s=t.get("timeout_s", c_num(0.1, 600), 10.0),
    )
    if typ in MQTT_TYPES:
        defaults: dict[str, Any] = {}
        if typ == "azure-iothub":
            hub = t.req("hub", c_nonempty)
            common["hub"] = hub
            defaults = {"host": f"{hub}.azure-devices.net", "port": 8883, "tls": True}
            common["device_id"] = t.req("device_id", c_nonempty)
            common["device_key_file"] = t.get("device_key_file", c_path(base), None)
            common["sas_ttl_s"] = t.get("sas_ttl_s", c_int(60, 366 * 86400), 3600)
        if typ == "aws-iot":
            defaults = {"port": 8883, "tls": True}
            if "host" not in t.data:
                raise ConfigError(t.key("host"), "is required (the account's IoT endpoint)")
            common["topic_template"] = t.get(
                "topic_template", _template, "gateway-agent/{gateway_id}/{dev_eui}/{kind}"
            )
        common["mqtt"] = m = _mqtt(t, base, upstream, defaults)
        common["backoff_initial_s"], common["backoff_max_s"] = m.backoff_initial_s, m.backoff_max_s
        if typ == "mqtt":
            common["layout"] = t.get("layout", c_choice("agent", "chirpstack"), "agent")
            common["application_id"] = t.get("application_id", c_nonempty, "gateway-agent")
            common["application_name"] = t.get("application_name", c_nonempty, "gateway-agent")
        if typ == "homeassistant":
            common["discovery_prefix"] = t.get("discovery_prefix", c_nonempty, "homeassistant")
        if typ == "aws-iot" and m.cert_file is None:
            raise ConfigError(t.key("cert_file"), "is required (aws-iot uses mutual TLS)")
        if typ == "azure-iothub" and common["device_key_file"] is None and m.cert_file is None:
            raise ConfigError(t.key("device_key_file"), "is required (or cert_file and key_file)")
    else:
        common["url"] = t.req("url", _url)
        common["backoff_initial_s"] = t.get("backoff_initial_s", c_num(0.01, 3600), 1.0)
        common["backoff_max_s"] = t.get("backoff_max_s", c_num(0.01, 86400), 60.0)
        if typ == "influxdb":
            common["database"] = t.get("database", c_nonempty, None)
            common["org"] = t.get("org", c_nonempty, None)
            common["bucket"] = t.get("bucket", c_nonempty, None)
            common["token_file"] = t.get("token_file", c_path(base), None)
            common["username"] = t.get("username", c_nonempty, None)
            common["password_file"] = t.get("password_file", c_path(base), None)
            if (common["database"] is None) == (common["bucket"] is None):
                raise ConfigError(
                    t.key("database"), "give either database (1.x) or org + bucket (2.x/3.x)"
                )
            if common["bucket"] is not None and common["org"] is None:
                raise ConfigError(t.key("org"), "is required with bucket")
        if typ == "webhook":
            common["secret_file"] = t.get("secret_file", c_path(base), None)
    t.done()
    return OutputConfig(**common)


def load_outputs(
    raw: Any,
    base: Path | None,
    upstream: Callable[[TomlTable, Path | None], UpstreamConfig],
) -> tuple[OutputConfig, ...]:
    if not isinstance(raw, list):
        raise ConfigError(
            "outputs", f"expected an array of tables ([[outputs]]), got {type_name(raw)}"
        )
    outs = tuple(
        load_output(TomlTable(o, f"outputs[{i}]"), base, upstream) for i, o in enumerate(raw)
    )
    names = [o.name for o in outs]
    for i, n in enumerate(names):
        if names.index(n) != i:
            raise ConfigError(f"outputs[{i}].name", f"duplicate output name {shown(n)}")
    return outs


def load_relay(
    t: TomlTable,
    base: Path | None,
    upstream: Callable[[TomlTable, Path | None], UpstreamConfig],
) -> RelayConfig:
    keys = tuple(k for k in MQTT_KEYS if k != "topic_prefix")  # here: ChirpStack's region
    own_broker = any(k in t.data for k in ("host", "port", "tls"))
    mqtt = _mqtt(t, base, upstream, {}, keys) if own_broker else None
    if not own_broker:
        extra = sorted(k for k in keys if k in t.data)
        if extra:
            raise ConfigError(t.key(extra[0]), "only with host/port/tls (a broker of its own)")
    prefix = t.get("topic_prefix", c_nonempty, "eu868")
    if any(c in prefix for c in "+#") or not prefix.isprintable():
        raise ConfigError(t.key("topic_prefix"), "must not contain + or # or control characters")
    cfg = RelayConfig(
        kind=t.get("kind", c_choice("chirpstack"), "chirpstack"),
        topic_prefix=prefix,
        json=t.get("json", c_bool, False),
        mqtt=mqtt,
        join_window_s=t.get("join_window_s", c_num(0.5, 60), 5.0),
        stats_interval_s=t.get("stats_interval_s", c_num(1, 86400), 30.0),
        api_server=t.get("api_server", _server, None),
        api_token_file=t.get("api_token_file", c_path(base), None),
        api_tls=t.get("api_tls", c_bool, False),
        api_ca_file=t.get("api_ca_file", c_path(base), None),
        api_refresh_s=t.get("api_refresh_s", c_num(10, 7 * 86400), 3600.0),
        api_lookup_per_min=t.get("api_lookup_per_min", c_int(1, 6000), 30),
    )
    if cfg.api_server and cfg.api_token_file is None:
        raise ConfigError(t.key("api_token_file"), "is required with api_server")
    t.done()
    return cfg
