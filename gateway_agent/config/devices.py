"""The devices file: `[[device]]` tables -> `Device`s, and the key-file permission check."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway_agent.config.convert import (
    c_any,
    c_bool,
    c_choice,
    c_hex,
    c_list,
    c_nonempty,
    c_str,
)
from gateway_agent.config.files import in_file, one_line, read_toml
from gateway_agent.errors import ConfigError
from gateway_agent.tomltable import TomlTable


def _c_table(v: Any, p: str) -> dict[str, Any]:
    return TomlTable(v, p).data


DEVICE_KEYS_SECRET = ("nwk_s_key", "app_s_key", "app_key")


def load_devices(doc: Mapping[str, Any]) -> list[Any]:
    """`[[device]]` tables -> `Device`s. Errors name the key path (`device[2].dev_addr`)."""
    from gateway_agent.model import DEVICE_CLASSES, Device
    from gateway_agent.secret import Secret

    root = TomlTable(dict(doc), "")
    raw: Any = root.get("device", c_any, None) or []
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
        raise ConfigError(key_path, one_line(f"{path}: cannot read: {e.strerror}")) from e
    if mode & 0o004:
        raise ConfigError(
            key_path,
            f"{path} holds keys and is world-readable (mode {mode & 0o777:o}); run: chmod 600 {path}",
        )


def read_devices(path: str | Path, key_path: str = "agent.devices_file") -> list[Any]:
    """Check the file's mode (`key_path` names the setting that points at it), read and validate
    it. Raises ConfigError; past the mode check a ConfigFileError naming the file."""
    p = Path(path)
    check_secret_file(p, key_path)
    doc = read_toml(p)
    try:
        return load_devices(doc)
    except ConfigError as e:
        raise in_file(p, e) from e
