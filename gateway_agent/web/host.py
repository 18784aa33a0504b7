"""What the web console needs from the daemon, as a Protocol: the daemon passes itself in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.store import Store
    from gateway_agent.store.thread import StoreThread

# A control command (daemon/control_server.py Handler): the console acts and reads through the
# same functions as `gateway-agent ... --json`, so the JSON API is the CLI's, byte for byte.
Command = Callable[[dict[str, Any]], Awaitable[Any]]
Commands = Mapping[str, Command]


class WebHost(Protocol):
    """The daemon's parts the console reads: its config, the store and the store thread (every
    SQLite call goes through `st.call`), and the stop event (live streams end with it)."""

    cfg: Config
    st: StoreThread
    store: Store
    stop: asyncio.Event
