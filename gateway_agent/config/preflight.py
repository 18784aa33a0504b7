"""What `run` checks before it starts, in one place, so `config check` refuses exactly what `run`
refuses: the devices file, the key files' modes, the password file's bytes, the state dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway_agent.config.devices import check_secret_file, read_devices
from gateway_agent.config.files import byte_position, one_line
from gateway_agent.config.sections import Config
from gateway_agent.errors import ConfigError


def preflight(cfg: Config, *, create_state_dir: bool = False) -> list[Any]:
    """Raise ConfigError on the first thing that stops `run`; return the devices file's devices.

    `run` passes `create_state_dir=True` (it makes the directory, 0750); `config check` leaves
    the disk alone and only refuses a path that cannot become a directory."""
    devices = read_devices(cfg.agent.devices_file) if cfg.agent.devices_file is not None else []
    if cfg.upstream.key_file is not None:
        check_secret_file(cfg.upstream.key_file, "upstream.key_file")
    if cfg.upstream.password_file is not None:
        check_secret_file(cfg.upstream.password_file, "upstream.password_file")
        _check_password_text(cfg.upstream.password_file)
    for i, out in enumerate(cfg.outputs):  # tokens, secrets, passwords, keys: 0600
        for f in out.secret_files():
            check_secret_file(f, f"outputs[{i}]")
    if cfg.relay is not None:
        for f in cfg.relay.secret_files():
            check_secret_file(f, "relay")
    if create_state_dir:
        try:
            cfg.agent.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as e:
            msg = one_line(f"{cfg.agent.state_dir}: {e.strerror or e}")
            raise ConfigError("agent.state_dir", msg) from e
    else:
        _check_state_dir(cfg.agent.state_dir)
    if cfg.web is not None:  # the console's users and token files: 0600, hashes only
        from gateway_agent.web.users import read_credentials

        read_credentials(cfg.web)
    return devices


def _check_password_text(path: Path) -> None:
    """The forwarder reads the password as UTF-8 when it connects; bad bytes must stop the start,
    not the running daemon. Unreadable here is left to the forwarder (the daemon may run as
    another user than `config check`); it reports that and retries."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:  # the byte itself is not shown: it is part of a secret
        raise ConfigError(
            "upstream.password_file",
            one_line(f"{path}: not UTF-8 at {byte_position(data, e.start)}"),
        ) from e


def _check_state_dir(path: Path) -> None:
    """What `mkdir(parents=True, exist_ok=True)` would refuse whoever runs it: a file in the way."""
    for p in (path, *path.parents):
        try:
            exists, is_dir, is_link = p.exists(), p.is_dir(), p.is_symlink()
        except OSError:  # no search permission here: depends on who runs it, left to `run`
            return
        if exists:
            if not is_dir:
                raise ConfigError("agent.state_dir", one_line(f"{p}: Not a directory"))
            return
        if is_link:  # a dangling link: mkdir cannot create through it
            raise ConfigError("agent.state_dir", one_line(f"{p}: a symbolic link to nothing"))
