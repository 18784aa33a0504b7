"""The daemon's local control socket server: a registry of commands and streams, one JSON line each.

Mode 0660 (group of the service user). The CLI uses it while the daemon runs, because a WAL reader
would need write access to the -shm file. Framing is shared with the client in gateway_agent.control.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway_agent.control import MAX_REQUEST, decode_request, encode_answer
from gateway_agent.logfmt import log_event

# The logger keeps the name it had before the server left gateway_agent.control: log lines and
# journald filters stay the same.
log = logging.getLogger("gateway_agent.control")

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
StreamHandler = Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[None]]


class ControlServer:
    def __init__(self, path: Path, group: str | None = None) -> None:
        self.path = path
        self.group = group
        self.handlers: dict[str, Handler] = {}
        self.streams: dict[str, StreamHandler] = {}

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
                    req = decode_request(line)
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
        writer.write(encode_answer(obj))
        await writer.drain()
