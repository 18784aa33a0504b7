"""Configuration: TOML -> one frozen `Config` tree, and the devices file.

sections.py holds the dataclasses (the public config contract), convert.py the value checks,
files.py reading a user's TOML file (bytes, UTF-8, syntax), load.py the agent config file,
devices.py the devices file and the key-file permission check, preflight.py what `run` checks
before it starts (so `config check` refuses the same).
"""

from gateway_agent.config.convert import parse_hex
from gateway_agent.config.devices import (
    DEVICE_KEYS_SECRET,
    check_secret_file,
    load_devices,
    read_devices,
)
from gateway_agent.config.files import ConfigFileError, in_file, read_toml
from gateway_agent.config.load import load_config, read_config
from gateway_agent.config.preflight import preflight
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

__all__ = [
    "DEVICE_KEYS_SECRET",
    "SERIAL_DEFAULT_BAUD",
    "SERIAL_FORMATS",
    "AgentConfig",
    "Config",
    "ConfigFileError",
    "GwmpSourceConfig",
    "LorawanConfig",
    "MetricsConfig",
    "SerialSourceConfig",
    "SourceConfig",
    "StoreConfig",
    "UpstreamConfig",
    "check_secret_file",
    "in_file",
    "load_config",
    "load_devices",
    "parse_hex",
    "preflight",
    "read_config",
    "read_devices",
    "read_toml",
]
