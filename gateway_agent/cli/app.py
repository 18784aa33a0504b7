"""The plumbing every command shares: the context (config, control socket or DB), output, errors
and argument parsing. `--json` on every read command; exit 0 ok, 1 failure, 2 usage error."""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.console import Console

from gateway_agent.config import Config, ConfigFileError, parse_hex, read_config
from gateway_agent.errors import AgentError, ConfigError, ControlError

DEFAULT_CONFIG = "/etc/gateway-agent/agent.toml"
console = Console()
err_console = Console(stderr=True)


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str, ensure_ascii=False))


def fail(msg: str, code: int = 1) -> NoReturn:
    # soft_wrap: one line whatever the width (scripts read the reason; rich would wrap at 80).
    err_console.print(f"error: {msg}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


_QUOTED = re.compile(r'"[^"]*"')


def config_error_text(e: ConfigError, detail_only: bool = False, *, file: bool = True) -> str:
    """The error as printed, led by the file it is in (unless `file=False`); the offending value
    is redacted when the key path names a key (a value quoted back for a mistyped key is most of
    the key)."""
    last = e.key_path.rsplit(".", 1)[-1].lower()
    detail = e.detail
    if last.endswith("key"):
        detail = _QUOTED.sub('"<redacted>"', detail)
    if detail_only:
        return detail
    text = f"{e.key_path}: {detail}" if e.key_path else detail
    if file and isinstance(e, ConfigFileError):
        text = f"{e.file}: {text}"
    return text


def hex_arg(value: str, what: str, n: int | None = None) -> bytes:
    try:
        b = parse_hex(value, what)
    except ConfigError as e:
        raise click.BadParameter(config_error_text(e, detail_only=True), param_hint=what) from None
    if n is not None and len(b) != n:
        raise click.BadParameter(f"expected {n} bytes of hex, got {len(b)}", param_hint=what)
    return b


def parse_since(s: str | None) -> float | None:
    """`30m`, `2h`, `7d`, an ISO date/time, or seconds."""
    if not s:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if s[-1:] in units and s[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(s[:-1]) * units[s[-1]]
    try:
        return dt.datetime.fromisoformat(s).timestamp()
    except ValueError:
        raise click.BadParameter(
            "expected e.g. 30m, 2h, 7d or an ISO date", param_hint="--since"
        ) from None


class Ctx:
    """Lazy access to config, the control socket (daemon running) or the DB (daemon stopped)."""

    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._cfg: Config | None = None
        self._online: bool | None = None

    @property
    def cfg(self) -> Config:
        if self._cfg is None:
            try:
                self._cfg = read_config(self.config_path)
            except ConfigError as e:
                fail(config_error_text(e))
        assert self._cfg is not None
        return self._cfg

    @property
    def online(self) -> bool:
        if self._online is None:
            from gateway_agent.control import request

            try:
                request(self.cfg.agent.control_path, "ping", timeout_s=3)
                self._online = True
            except ControlError:
                self._online = False
        return self._online

    def ask(self, cmd: str, **args: Any) -> Any:
        """One control request; raises ControlError (unreachable, or the daemon's error answer)."""
        from gateway_agent.control import request

        return request(self.cfg.agent.control_path, cmd, **args)

    def act(self, cmd: str, **args: Any) -> Any:
        """`ask` for commands: an error answer (e.g. unknown device) exits 1 with its reason."""
        try:
            return self.ask(cmd, **args)
        except ControlError as e:
            fail(str(e))

    def store(self) -> Any:
        from gateway_agent.store import Store

        path = self.cfg.agent.db_path
        if not path.exists():
            fail(f"no database at {path} (has the agent ever run with this config?)")
        return Store(path, self.cfg.store.synchronous)


pass_ctx = click.make_pass_decorator(Ctx)


def ask_or_read(c: Ctx, cmd: str, offline: Callable[[Any], Any], **args: Any) -> Any:
    """The daemon's answer to `cmd` while it runs, else `offline(store)` on the DB it left;
    any AgentError exits 1 with its reason."""
    try:
        if c.online:
            return c.ask(cmd, **args)
        store = c.store()
        try:
            return offline(store)
        finally:
            store.close()
    except AgentError as e:
        fail(str(e))
