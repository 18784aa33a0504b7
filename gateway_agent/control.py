"""The daemon's local control socket: one JSON request per line, one JSON answer per line.

Mode 0660 (group of the service user). Commands are a registry like codecs and sources; the CLI
uses them while the daemon runs, because a WAL reader would need write access to the -shm file.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway_agent.logfmt import log_event

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_REQUEST = 1 << 20


class ControlServer:
    def __init__(self, path: Path, group: str | None = None) -> None:
        self.path = path
        self.group = group
        self.handlers: dict[str, Handler] = {}
        self.streams: dict[
            str, Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[None]]
        ] = {}

    def command(self, name: str) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            if name in self.handlers:
                raise ValueError(f"duplicate control command {name!r}")
            self.handlers[name] = fn
            return fn

        return deco

    async def run(self, stop: asyncio.Event) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o117)
        try:
            server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_REQUEST
            )
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        if self.group:
            try:
                os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)
            except (KeyError, PermissionError) as e:
                log_event(
                    log,
                    logging.WARNING,
                    "control_socket_group_failed",
                    group=self.group,
                    error=str(e),
                )
        log_event(log, logging.INFO, "control_listening", path=str(self.path))
        async with server:
            await stop.wait()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    req = json.loads(line)
                    if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                        raise ValueError('expected {"cmd": ...}')
                except ValueError as e:
                    await self._send(writer, {"ok": False, "error": f"bad request: {e}"})
                    continue
                cmd = req["cmd"]
                if cmd in self.streams:
                    await self.streams[cmd](req, writer)
                    break
                h = self.handlers.get(cmd)
                if h is None:
                    await self._send(writer, {"ok": False, "error": f"unknown command {cmd!r}"})
                    continue
                try:
                    result = await h(req)
                    await self._send(writer, {"ok": True, "result": result})
                except Exception as e:  # a bad request must not kill the daemon
                    log_event(log, logging.WARNING, "control_error", cmd=cmd, error=str(e))
                    await self._send(writer, {"ok": False, "error": str(e) or type(e).__name__})
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, obj: Any) -> None:
        writer.write(json.dumps(obj, default=str, separators=(",", ":")).encode() + b"\n")
        await writer.drain()


def request(path: Path, cmd: str, timeout_s: float = 10.0, **args: Any) -> Any:
    """Blocking client for the CLI. Raises ControlError when unreachable or on an error answer."""
    import socket

    from gateway_agent.errors import ControlError

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(path))
            s.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except OSError as e:
        raise ControlError(f"control socket {path}: {e.strerror or e}") from e
    try:
        ans = json.loads(buf)
    except ValueError as e:
        raise ControlError(f"control socket {path}: bad answer") from e
    if not ans.get("ok"):
        raise ControlError(str(ans.get("error")))
    return ans.get("result")


def stream(path: Path, cmd: str, **args: Any):  # type: ignore[no-untyped-def]
    """Yield JSON objects from a streaming command (e.g. readings tail) until the daemon closes."""
    import socket

    from gateway_agent.errors import ControlError

    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(path))
    except OSError as e:
        raise ControlError(f"control socket {path}: {e.strerror or e}") from e
    with s, s.makefile("rb") as f:
        s.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        for line in f:
            yield json.loads(line)
