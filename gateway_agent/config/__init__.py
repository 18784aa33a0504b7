"""Configuration: TOML -> one frozen `Config` tree, and the devices file.

sections.py holds the dataclasses (the public config contract), convert.py the value checks,
load.py the agent config file, devices.py the devices file and the key-file permission check.
"""

from gateway_agent.config.convert import parse_hex
from gateway_agent.config.devices import (
    DEVICE_KEYS_SECRET,
    check_secret_file,
    load_devices,
    read_devices,
)
from gateway_agent.config.load import load_config, read_config
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
    "GwmpSourceConfig",
    "LorawanConfig",
    "MetricsConfig",
    "SerialSourceConfig",
    "SourceConfig",
    "StoreConfig",
    "UpstreamConfig",
    "check_secret_file",
    "load_config",
    "load_devices",
    "parse_hex",
    "read_config",
    "read_devices",
]
