"""SIGHUP and the `reload` command: read and validate the new config (as `run` would, bad bytes
included), swap it in one assignment, re-sync devices; a broken file keeps the old config and the
daemon running. Some sections only apply after a restart."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

import decoders
from gateway_agent.config import preflight, read_config
from gateway_agent.errors import ConfigError
from gateway_agent.logfmt import log_event

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.daemon.sdnotify import Notifier
    from gateway_agent.ingest import Ingest
    from gateway_agent.metrics import Counters
    from gateway_agent.store.thread import StoreThread

# The name these lines carried before the daemon was split into modules; log filters still match.
log = logging.getLogger("gateway_agent.daemon")

# Sections a reload records but cannot apply to running tasks.
RESTART_SECTIONS = ("sources", "store", "lorawan", "upstream", "outputs", "relay", "web")


class ReloadHost(Protocol):
    """What a reload needs from the daemon."""

    cfg: Config
    counters: Counters
    notifier: Notifier
    ingest: Ingest
    st: StoreThread
    stop: asyncio.Event
    reload_requested: asyncio.Event

    async def sync_devices_file(self) -> None: ...

    async def load_downlinks(self) -> None: ...


async def reloader(d: ReloadHost) -> None:
    """Run a reload each time `reload_requested` is set (SIGHUP), until stop."""
    while not d.stop.is_set():
        wait = asyncio.ensure_future(d.reload_requested.wait())
        stop = asyncio.ensure_future(d.stop.wait())
        await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
        wait.cancel()
        stop.cancel()
        if d.stop.is_set():
            break
        d.reload_requested.clear()
        await reload(d)


async def reload(d: ReloadHost) -> dict[str, Any]:
    """Re-read the config file; answers `{"reloaded": bool, ...}` for the control command."""
    d.notifier.reloading()
    path = d.cfg.path
    try:
        if path is None:
            raise ConfigError("", "no config file to reload")
        new = read_config(path)
        preflight(new)  # the devices file and key files too, before swapping anything
    except ConfigError as e:  # names the file and the key, or the byte offset / line
        d.counters.inc("config_reload_failed")
        log_event(log, logging.ERROR, "config_reload_failed", error=str(e))
        d.notifier.ready("running (reload rejected)")
        return {"reloaded": False, "error": str(e)}
    # The forwarder keeps its connection and format until a restart (a reading stored in
    # one format meanwhile is converted when sent in the other).
    restart_needed = [k for k in RESTART_SECTIONS if getattr(new, k) != getattr(d.cfg, k)]
    d.cfg = new
    decoders.configure_codecs(new.codecs)
    d.ingest.cfg = new
    d.ingest.downlinks.lorawan = new.lorawan
    logging.getLogger().setLevel(new.agent.log_level)
    try:
        await d.sync_devices_file()
    except ConfigError as e:  # the file changed again since it was checked: keep the DB's devices
        d.counters.inc("config_reload_failed")
        log_event(log, logging.ERROR, "devices_sync_failed", error=str(e))
    await d.st.call(d.ingest.load)
    await d.load_downlinks()
    d.ingest.add_event("config_reloaded", {"restartNeededFor": restart_needed})
    log_event(log, logging.INFO, "config_reloaded", restart_needed=",".join(restart_needed) or None)
    d.notifier.ready("running (reloaded)")
    return {"reloaded": True, "restart_needed": restart_needed}
