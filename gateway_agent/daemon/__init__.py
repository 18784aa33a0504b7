"""Supervision: one TaskGroup, signals, sd_notify + health-gated watchdog, SIGHUP reload.

Stop order: sources stop reading -> ingest drains and commits its last batch -> the forwarder
awaits in-flight PUBACKs up to a deadline -> STOPPING=1 -> the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

from gateway_agent import __version__
from gateway_agent.config import Config, read_config, read_devices
from gateway_agent.control import ControlServer
from gateway_agent.daemon.actions import actions_worker
from gateway_agent.daemon.sdnotify import Notifier
from gateway_agent.errors import AgentError, ConfigError, DiskFullError, StoreError
from gateway_agent.ingest import Ingest
from gateway_agent.logfmt import log_event, setup_logging
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.metrics import COUNTERS, Counters
from gateway_agent.sources import SOURCE_TYPES, Source
from gateway_agent.store import Store
from gateway_agent.store.thread import StoreThread
from gateway_agent.upstream.forwarder import DELETE_EVERY_S, Forwarder

log = logging.getLogger(__name__)

TICK_S = 2.0  # rule timers (silence, `for` windows without uplinks)
HOUSEKEEPING_S = 15.0  # disk cap, retention, gateway stats, clock check
CLOCK_JUMP_S = 120.0


def _wal_state(path: Path) -> dict[str, Any] | None:
    """A WAL left non-empty means the last run did not close cleanly (kill -9, power cut)."""
    wal = Path(f"{path}-wal")
    try:
        size = wal.stat().st_size
    except OSError:
        return None
    if size == 0:
        return None
    # WAL = 32-byte header + frames of (24 + page_size); a torn tail is ignored by SQLite.
    page = 4096
    with contextlib.suppress(OSError), wal.open("rb") as f:
        hdr = f.read(32)
        if len(hdr) == 32:
            page = int.from_bytes(hdr[8:12], "big") or 4096
    torn = size < 32 or (size - 32) % (24 + page) != 0
    return {"walBytes": size, "walTorn": torn}


def open_store(cfg: Config) -> tuple[Store, dict[str, Any] | None]:
    """Open the DB; a corrupt or unreadable one is moved aside and a fresh one started (never a
    crash loop). Returns the store and, when it recovered, what to report upstream."""
    path = cfg.agent.db_path
    cap = int(cfg.store.max_db_mb * 1024 * 1024)
    retention = cfg.store.retention_days * 86400

    def make() -> Store:
        return Store(path, cfg.store.synchronous, max_bytes=cap, retention_s=retention)

    wal = _wal_state(path)
    try:
        store = make()
        if cfg.store.quick_check_on_start:
            result = store.quick_check()
            if result != "ok":
                store.close()
                raise StoreError(f"quick_check: {result[:200]}")
        if wal is not None:
            log_event(log, logging.WARNING, "database_recovered", action="wal_replayed", **wal)
            return store, {"action": "wal_replayed", **wal}
        return store, None
    except (sqlite3.DatabaseError, StoreError, OSError) as e:
        if isinstance(e, StoreError) and "newer than this agent" in str(e):
            raise
        stamp = time.strftime("%Y%m%dT%H%M%S")
        n = 0
        while Path(f"{path}.corrupt-{stamp}{'-' + str(n) if n else ''}").exists():
            n += 1
        tag = f"{stamp}{'-' + str(n) if n else ''}"
        moved = []
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(path) + suffix)
            if p.exists():
                dest = Path(f"{path}.corrupt-{tag}{suffix}")
                shutil.move(p, dest)
                moved.append(str(dest))
        log_event(
            log,
            logging.ERROR,
            "database_recovered",
            action="moved_aside",
            error=str(e),
            moved_to=moved[0] if moved else None,
        )
        store = make()
        return store, {"action": "moved_aside", "error": str(e), "movedTo": moved}


class Daemon:
    def __init__(self, cfg: Config, counters: Counters = COUNTERS) -> None:
        self.cfg = cfg
        self.counters = counters
        self.started = time.time()
        self.started_mono = time.monotonic()
        self.notifier = Notifier()
        self.stop = asyncio.Event()
        self.reload_requested = asyncio.Event()
        self.sources: list[Source] = []
        self.st = StoreThread()
        self.store: Store
        self.ingest: Ingest
        self.forwarder: Forwarder
        self.frames: asyncio.Queue[RadioFrame] = asyncio.Queue(maxsize=cfg.agent.frame_queue)
        self.tail_queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self.clock_offset = time.time() - time.monotonic()
        self.actions_q: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        self._refused_reported = 0

    # -- wiring --------------------------------------------------------------------------

    def build_sources(self) -> list[Source]:
        import gateway_agent.sources.gwmp  # noqa: F401  (registers "gwmp")
        import gateway_agent.sources.serial  # noqa: F401  (registers "serial")

        return [SOURCE_TYPES[s.type](s, self.counters) for s in self.cfg.sources]

    def send_downlink(self, tx: DownlinkTx) -> bool:
        for s in self.sources:
            if s.can_downlink(tx.gateway_id):
                return s.send_downlink(tx)
        return False

    def can_downlink(self, gateway_id: str) -> bool:
        return any(s.can_downlink(gateway_id) for s in self.sources)

    def status_figures(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "uptimeS": round(time.monotonic() - self.started_mono),
            "accepted": self.ingest.accepted,
            "published": self.forwarder.published,
            "devices": len(self.ingest.devices),
        }

    async def sync_devices_file(self) -> None:
        f = self.cfg.agent.devices_file
        if f is None:
            return
        devs = read_devices(f)
        n, removed = await self.st.call(self.store.sync_devices, devs, "file")
        log_event(log, logging.INFO, "devices_synced", file=str(f), devices=n, removed=removed)

    # -- run -----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_requested.set)
        self.store, recovered = await self.st.call(open_store, self.cfg)
        try:
            await self._run(recovered)
        finally:
            self.notifier.stopping()
            await self.st.call(self.store.close)
            self.st.close()
            log_event(
                log,
                logging.INFO,
                "stopped",
                accepted=self.ingest.accepted if hasattr(self, "ingest") else 0,
            )

    async def _run(self, recovered: dict[str, Any] | None) -> None:
        await self.sync_devices_file()
        self.forwarder = Forwarder(
            self.cfg.upstream,
            self.cfg.agent.gateway_id,
            self.store,
            self.st.call,
            self.counters,
            self.status_figures,
            delete_after_s=max(DELETE_EVERY_S, 2 * self.cfg.store.commit_interval_ms / 1000 + 1),
        )
        self.ingest = Ingest(
            self.cfg,
            self.store,
            self.st.call,
            self.counters,
            self.send_downlink,
            on_commit=self._on_commit,
            run_actions=self._run_actions,
            can_downlink=self.can_downlink,
        )
        self.ingest.live_publish = self.forwarder.publish_live
        await self.st.call(self.ingest.load)
        await self._load_downlinks()
        if recovered is not None:
            self.ingest.add_event("database_recovered", recovered)
        self.sources = self.build_sources()
        for src in self.sources:
            if hasattr(src, "on_refused"):  # GWMP: TX_ACK errors come back for an RX2 retry
                src.on_refused = self.ingest.downlinks.refused
        control = ControlServer(self.cfg.agent.control_path, self.cfg.agent.control_group)
        from gateway_agent.daemon.commands import register

        register(control, self)
        async with asyncio.TaskGroup() as tg:
            for src in self.sources:
                tg.create_task(src.run(self.frames, self.stop), name=f"source:{src.name}")
            tg.create_task(self.ingest.run(self.frames, self.stop), name="ingest")
            tg.create_task(self.forwarder.run(self.stop), name="forwarder")
            tg.create_task(control.run(self.stop), name="control")
            tg.create_task(self._timers(), name="timers")
            tg.create_task(self._watchdog(), name="watchdog")
            tg.create_task(self._reloader(), name="reloader")
            tg.create_task(actions_worker(self), name="actions")
            if self.cfg.metrics.listen:
                from gateway_agent.daemon.prometheus import serve_metrics

                tg.create_task(serve_metrics(self, self.stop), name="metrics")
            log_event(
                log,
                logging.INFO,
                "started",
                version=__version__,
                gateway_id=self.cfg.agent.gateway_id,
                sources=len(self.sources),
                devices=len(self.ingest.devices),
                db=str(self.cfg.agent.db_path),
            )
            self.notifier.ready(f"running: {len(self.ingest.devices)} devices")
        # Sources have stopped: the figures since the last housekeeping round survive a restart.
        await self._save_gateway_stats()

    def _on_commit(self) -> None:
        self.forwarder.notify_commit()

    async def _load_downlinks(self) -> None:
        rows = await self.st.call(self.store.pending_downlinks)
        pend: dict[bytes, list[dict[str, Any]]] = {}
        for r in rows:
            pend.setdefault(bytes.fromhex(r["dev_eui"]), []).append(r)
        self.ingest.downlinks.queued = pend

    def _run_actions(self, alert: Any, dev: Any) -> None:
        from gateway_agent.daemon.actions import run_rule_actions

        run_rule_actions(self, alert, dev)

    # -- periodic work -------------------------------------------------------------------

    async def _timers(self) -> None:
        next_house = time.monotonic() + 1.0
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=TICK_S)
                break
            except TimeoutError:
                pass
            try:
                self.ingest.tick_rules(time.time())
                if self.store.drops_unreported:
                    await self.forwarder.report_drops()
                if time.monotonic() >= next_house:
                    next_house = time.monotonic() + HOUSEKEEPING_S
                    await self._housekeeping()
            except AgentError as e:
                log_event(
                    log, logging.WARNING, "housekeeping_failed", reason=e.reason, error=str(e)
                )
            except Exception:
                self.counters.internal_error("timers")
                log.exception("internal_error where=timers")

    async def _housekeeping(self) -> None:
        # Clock jump: wall minus monotonic moves only when the wall clock is stepped.
        offset = time.time() - time.monotonic()
        if abs(offset - self.clock_offset) > CLOCK_JUMP_S:
            log_event(
                log, logging.WARNING, "clock_jump", jump_s=round(offset - self.clock_offset, 1)
            )
            self.ingest.add_event("clock_jump", {"jumpS": round(offset - self.clock_offset, 1)})
        self.clock_offset = offset
        await self._save_gateway_stats()
        await self._store_pressure()

    async def _save_gateway_stats(self) -> None:
        """Per-gateway figures (last seen, rx ok/bad, tx ok/failed) into the DB for the CLI."""
        stats: dict[str, Any] = {}
        for s in self.sources:
            gw = s.stats().get("gateways", {})
            if isinstance(gw, dict):
                stats.update(gw)
        if stats:
            with contextlib.suppress(StoreError):  # disk full must not skip the shedding after
                await self.st.call(self.store.save_gateway_stats, stats)

    async def _store_pressure(self) -> None:
        """Disk cap, retention, ENOSPC: shed per invariant 4 and report every drop upstream."""
        dropped = await self.st.call(
            self.store.enforce_cap,
            int(self.cfg.store.max_db_mb * 1024 * 1024),
            self.cfg.store.retention_days * 86400,
            time.time(),
        )
        if dropped.get("history"):  # retention and cap on the local copy; the cap part is in
            self.counters.inc("history_deleted", dropped["history"])  # the drop report below
        await self.forwarder.report_drops()
        try:
            refused = self.ingest.refused - self._refused_reported
            if refused > 0:
                row = self.forwarder.event_row(
                    "readings_refused", {"count": refused, "reason": "disk_full"}
                )
                await self.st.call(self.store.add_outbox, [row])
                self._refused_reported += refused
        except DiskFullError as e:
            log_event(log, logging.ERROR, "disk_full", error=str(e), refused=self.ingest.refused)

    def healthy(self) -> bool:
        now = time.monotonic()
        return now - self.ingest.heartbeat < 5.0 and now - self.st.last_ok < 60.0

    async def _watchdog(self) -> None:
        wd = self.notifier.watchdog_s
        if wd is None:
            await self.stop.wait()
            return
        interval = wd / 2
        probe = 0
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=interval)
                break
            except TimeoutError:
                pass
            probe += 1
            if probe % 4 == 0:  # prove the store thread still answers
                await self.st.call(self.store.get_meta, "schema")
            if self.healthy():
                self.notifier.watchdog()
            else:
                log_event(log, logging.ERROR, "watchdog_withheld", reason="pipeline_stalled")

    async def _reloader(self) -> None:
        while not self.stop.is_set():
            wait = asyncio.ensure_future(self.reload_requested.wait())
            stop = asyncio.ensure_future(self.stop.wait())
            await asyncio.wait({wait, stop}, return_when=asyncio.FIRST_COMPLETED)
            wait.cancel()
            stop.cancel()
            if self.stop.is_set():
                break
            self.reload_requested.clear()
            await self.reload()

    async def reload(self) -> dict[str, Any]:
        self.notifier.reloading()
        path = self.cfg.path
        try:
            if path is None:
                raise ConfigError("", "no config file to reload")
            new = read_config(path)
            if new.agent.devices_file is not None:
                read_devices(new.agent.devices_file)  # validate before swapping anything
        except ConfigError as e:
            self.counters.inc("config_reload_failed")
            log_event(log, logging.ERROR, "config_reload_failed", error=str(e))
            self.notifier.ready("running (reload rejected)")
            return {"reloaded": False, "error": str(e)}
        # The forwarder keeps its connection and format until a restart (a reading stored in
        # one format meanwhile is converted when sent in the other).
        restart_needed = [
            k
            for k in ("sources", "store", "lorawan", "upstream")
            if getattr(new, k) != getattr(self.cfg, k)
        ]
        self.cfg = new
        self.ingest.cfg = new
        self.ingest.downlinks.lorawan = new.lorawan
        logging.getLogger().setLevel(new.agent.log_level)
        await self.sync_devices_file()
        await self.st.call(self.ingest.load)
        await self._load_downlinks()
        self.ingest.add_event("config_reloaded", {"restartNeededFor": restart_needed})
        log_event(
            log, logging.INFO, "config_reloaded", restart_needed=",".join(restart_needed) or None
        )
        self.notifier.ready("running (reloaded)")
        return {"reloaded": True, "restart_needed": restart_needed}


def run(config_path: str) -> int:
    """Entry point of `gateway-agent run`. Bad config: one line and exit 1 (fail at start)."""
    os.umask(0o077)
    setup_logging("INFO")
    try:
        cfg = read_config(config_path)
        setup_logging(cfg.agent.log_level)
        if cfg.agent.devices_file is not None:
            read_devices(cfg.agent.devices_file)
        if cfg.upstream.key_file is not None:
            from gateway_agent.config import check_secret_file

            check_secret_file(cfg.upstream.key_file, "upstream.key_file")
        if cfg.upstream.password_file is not None:
            from gateway_agent.config import check_secret_file

            check_secret_file(cfg.upstream.password_file, "upstream.password_file")
        cfg.agent.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    except (ConfigError, OSError) as e:
        log_event(log, logging.ERROR, "config_invalid", error=str(e))
        return 1
    try:
        asyncio.run(Daemon(cfg).run())
    except StoreError as e:
        log_event(log, logging.ERROR, "store_failed", error=str(e))
        return 1
    return 0
