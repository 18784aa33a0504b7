"""A loopback TCP proxy standing for one gateway's backhaul (its 4G link) to the broker.

`cut()` resets every connection through it at once and refuses new ones until `restore()`.
`cut(blackhole=True)` is the 4G link that goes silent instead: connections stay open but every
byte either way is lost, new connections are accepted and hear nothing; the ends find out only
by their own timeouts (MQTT keepalive, CONNACK timeout). `restore()` then resets whatever was
opened before or during the outage (the carrier's NAT forgot them) and carries new ones again.

It runs its own event loop in a thread, so a busy simulator never slows the bytes it carries.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hil.ports import free_port

CHUNK = 65536


@dataclass(slots=True)
class ProxyStats:
    connections: int = 0  # carried to the broker
    refused: int = 0  # accepted and dropped (reset) or held silent (blackhole) while cut
    aborted: int = 0  # connection ends reset by a cut (or, blackholed, by the restore)
    lost_bytes: int = 0  # swallowed by a blackhole
    cuts: int = 0
    bytes_up: int = 0  # agent -> broker
    bytes_down: int = 0


class TcpProxy:
    """127.0.0.1:`port` -> 127.0.0.1:`target_port`. Thread-safe `cut`, `restore`, `close`."""

    def __init__(self, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.target_port = host, target_port
        self.port = free_port(host)
        self.stats = ProxyStats()
        self.up = True
        self.blackhole = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- lifecycle (caller's thread) ---------------------------------------------------------

    def start(self, timeout_s: float = 5.0) -> TcpProxy:
        self._thread = threading.Thread(target=self._main, name=f"proxy:{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"proxy on {self.port} did not start: {self._error}")
        return self

    def cut(self, blackhole: bool = False) -> None:
        """The backhaul goes: every connection reset and new ones refused, or (`blackhole`)
        everything silently lost."""
        self._call(self._blackhole if blackhole else self._cut)

    def restore(self) -> None:
        self._call(self._restore)

    def close(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        self._loop = None

    def _call(self, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(fn(), self._loop)
        fut.result(5.0)

    # -- the proxy's own loop ------------------------------------------------------------------

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port)
            )
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _cut(self) -> None:
        self.up = False
        self.stats.cuts += 1
        for w in list(self._live):
            w.transport.abort()
            self.stats.aborted += 1
        self._live.clear()

    async def _blackhole(self) -> None:
        self.up = False
        self.blackhole = True
        self.stats.cuts += 1

    async def _restore(self) -> None:
        if self.blackhole:  # what was open across the outage is gone on the carrier's side
            for w in list(self._live):
                w.transport.abort()
                self.stats.aborted += 1
            self._live.clear()
        self.blackhole = False
        self.up = True

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in list(self._live):
            w.transport.abort()
        self._live.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            self.stats.refused += 1
            if not self.blackhole:
                writer.transport.abort()
                return
            self._live.add(writer)  # accepted, then silence until the restore resets it
            await self._swallow(reader)
            return
        try:
            r2, w2 = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if not self.up:  # cut while connecting
            self.stats.refused += 1
            w2.transport.abort()
            if not self.blackhole:
                writer.transport.abort()
                return
            self._live.add(writer)
            await self._swallow(reader)
            return
        self.stats.connections += 1
        self._live.update((writer, w2))
        try:
            await asyncio.gather(self._pipe(reader, w2, True), self._pipe(r2, writer, False))
        finally:
            for w in (writer, w2):
                self._live.discard(w)
                w.transport.abort()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, up: bool) -> None:
        try:
            while True:
                data = await r.read(CHUNK)
                if not data:
                    break
                if self.blackhole:
                    self.stats.lost_bytes += len(data)
                    continue
                if up:
                    self.stats.bytes_up += len(data)
                else:
                    self.stats.bytes_down += len(data)
                w.write(data)
                await w.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not self.blackhole:  # one side gone: the other learns it (a silent link: not)
                w.transport.abort()

    async def _swallow(self, r: asyncio.StreamReader) -> None:
        try:
            while data := await r.read(CHUNK):
                self.stats.lost_bytes += len(data)
        except OSError:
            pass
