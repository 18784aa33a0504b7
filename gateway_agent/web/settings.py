"""`[web]` TOML table -> one frozen `WebSettings`. Pure: paths are checked later, at start.

`load_web_settings(table)` rejects unknown keys and raises ConfigError naming the key path. A
listen address off loopback is refused without authentication, and without TLS (issue #19).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway_agent.errors import ConfigError
from gateway_agent.tomltable import TomlTable, shown, type_name
from gateway_agent.tomltable import c_int as _int
from gateway_agent.tomltable import c_num as _num

ROLES = ("viewer", "operator")
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True, slots=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    users_file: Path | None = None  # TOML, mode 0600: [[user]] name, role, password (scrypt)
    token_file: Path | None = None  # one line, mode 0600: `Authorization: Bearer <token>`
    token_role: str = "viewer"  # noqa: S105  (a role name)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    session_idle_min: float = 60.0  # a session unused this long is gone
    session_max_h: float = 12.0  # and any session after this long (a lost phone)
    login_failures_per_min: int = 5  # per client address; 429 past it

    @property
    def auth(self) -> bool:
        return self.users_file is not None or self.token_file is not None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listen(v: Any, p: str) -> tuple[str, int]:
    if not isinstance(v, str) or ":" not in v:
        raise ConfigError(p, f'expected "host:port", got {type_name(v)}')
    host, _, port = v.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(p, f'expected "host:port" with a port 0-65535, got {shown(v)}')
    return host, int(port)


def _path(base: Path | None) -> Callable[[Any, str], Path]:
    def conv(v: Any, p: str) -> Path:
        if not isinstance(v, str) or not v.strip() or "\0" in v:
            raise ConfigError(p, f"expected a file path, got {type_name(v)}")
        path = Path(v).expanduser() if v.startswith("~/") else Path(v)
        return path if path.is_absolute() or base is None else base / path

    return conv


def _role(v: Any, p: str) -> str:
    if v not in ROLES:
        raise ConfigError(p, f"expected one of {' | '.join(ROLES)}, got {type_name(v)}")
    return str(v)


def load_web_settings(
    table: Mapping[str, Any] | None, base_dir: Path | None = None, path: str = "web"
) -> WebSettings:
    """The `[web]` table (None or {} for the defaults). Raises ConfigError naming the key."""
    t = TomlTable(dict(table or {}), path)
    d = WebSettings()
    host, port = t.get("listen", _listen, (d.host, d.port))
    conv = _path(base_dir)
    s = WebSettings(
        host=host,
        port=port,
        users_file=t.get("users_file", conv, None),
        token_file=t.get("token_file", conv, None),
        token_role=t.get("token_role", _role, d.token_role),
        tls_cert=t.get("tls_cert", conv, None),
        tls_key=t.get("tls_key", conv, None),
        session_idle_min=t.get("session_idle_min", _num(1, 7 * 24 * 60), d.session_idle_min),
        session_max_h=t.get("session_max_h", _num(0.1, 24 * 31), d.session_max_h),
        login_failures_per_min=t.get(
            "login_failures_per_min", _int(1, 1000), d.login_failures_per_min
        ),
    )
    t.done()
    if (s.tls_cert is None) != (s.tls_key is None):
        missing = "tls_key" if s.tls_key is None else "tls_cert"
        raise ConfigError(t.key(missing), "tls_cert and tls_key go together")
    if not s.loopback and not s.auth:
        raise ConfigError(
            t.key("listen"),
            f"{host} is not a loopback address: set users_file or token_file first "
            "(anyone on the network could act as an operator)",
        )
    if not s.loopback and not s.tls:
        raise ConfigError(
            t.key("listen"),
            f"{host} is not a loopback address: set tls_cert and tls_key "
            "(passwords and session cookies must not cross the network in clear)",
        )
    return s
