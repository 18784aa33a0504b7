"""Live readings as server-sent events: the newest stored readings, polled on the store thread
(like the control socket's `readings_tail`), at most one read a second per stream."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from gateway_agent.store import views
from gateway_agent.web.console import MAX_STREAMS, Console

POLL_S = 1.0
BATCH = 100  # readings per read: bounded work per poll
KEEPALIVE_S = 15.0


def add(app: web.Application, c: Console) -> None:
    async def events(request: web.Request) -> web.StreamResponse:
        if c.streams >= MAX_STREAMS:
            raise web.HTTPServiceUnavailable(text="too many live streams")
        host = c.host
        newest = await host.st.call(host.store.readings, None, None, 1)
        last = newest[0]["seq"] if newest else 0
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        c.streams += 1
        try:
            await resp.prepare(request)
            await resp.write(b"retry: 3000\n\n")
            quiet = 0.0
            while not host.stop.is_set():
                rows = await host.st.call(views.readings_view, host.store, None, None, BATCH, last)
                for r in rows:
                    last = r["seq"]
                    data = json.dumps(r, default=str, ensure_ascii=False)
                    await resp.write(f"event: reading\ndata: {data}\n\n".encode())
                quiet = 0.0 if rows else quiet + POLL_S
                if quiet >= KEEPALIVE_S:
                    await resp.write(b": keep-alive\n\n")
                    quiet = 0.0
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(host.stop.wait(), POLL_S)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            c.streams -= 1
        return resp

    app.router.add_get("/live/events", events)
