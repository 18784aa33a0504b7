"""Supervision: one TaskGroup, signals, sd_notify, the `Daemon` that wires the parts, and `run`.

Stop order: sources stop reading -> ingest drains and commits its last batch -> the forwarder
awaits in-flight PUBACKs up to a deadline -> STOPPING=1 -> the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

import decoders
from gateway_agent import __version__
from gateway_agent.config import Config, preflight, read_config, read_devices
from gateway_agent.daemon import reload as reload_
from gateway_agent.daemon.actions import actions_worker, run_rule_actions
from gateway_agent.daemon.commands import register
from gateway_agent.daemon.control_server import ControlServer
from gateway_agent.daemon.housekeeping import Housekeeping
from gateway_agent.daemon.outputs import build_outputs, forget_removed, register_outputs
from gateway_agent.daemon.report_command import register_report
from gateway_agent.daemon.sdnotify import Notifier
from gateway_agent.daemon.storeopen import open_store
from gateway_agent.daemon.timers import timers
from gateway_agent.daemon.watchdog import pipeline_healthy, watchdog
from gateway_agent.errors import ConfigError, StoreError
from gateway_agent.ingest import Ingest
from gateway_agent.logfmt import log_event, setup_logging
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.metrics import COUNTERS, Counters
from gateway_agent.model import Alert, Device
from gateway_agent.outputs.worker import OutputWorker
from gateway_agent.sources import SOURCE_TYPES, Source
from gateway_agent.store import Store
from gateway_agent.store.thread import StoreThread
from gateway_agent.upstream.forwarder import DELETE_EVERY_S, Forwarder

# The name these lines carried before the daemon was split into modules; log filters still match.
log = logging.getLogger("gateway_agent.daemon")


class Daemon:
    def __init__(self, cfg: Config, counters: Counters = COUNTERS) -> None:
        self.cfg = cfg
        decoders.configure_codecs(cfg.codecs)  # where `ttn:VENDOR/MODEL` codec ids resolve
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
        self.outputs: dict[str, OutputWorker] = {}  # [[outputs]] and the relay, by name
        self.relay: Any = None  # gateway_agent.relay's service when [relay] is configured
        self.removed_devices: list[str] = []  # removed by the devices file, not yet announced
        self.frames: asyncio.Queue[RadioFrame] = asyncio.Queue(maxsize=cfg.agent.frame_queue)
        self.housekeeping = Housekeeping(self)
        self.actions_q: asyncio.Queue[tuple[Alert, Device]] = asyncio.Queue(maxsize=1000)

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
            # what [upstream] has had acknowledged, also through its lane beside [[outputs]]
            "published": self.forwarder.published
            + (self.outputs["upstream"].delivered if "upstream" in self.outputs else 0),
            "devices": len(self.ingest.devices),
        }

    def healthy(self) -> bool:
        return pipeline_healthy(time.monotonic(), self.ingest.heartbeat, self.st.last_ok)

    async def sync_devices_file(self) -> None:
        f = self.cfg.agent.devices_file
        if f is None:
            return
        devs = read_devices(f)
        n, removed = await self.st.call(self.store.sync_devices, devs, "file")
        log_event(log, logging.INFO, "devices_synced", file=str(f), devices=n, removed=len(removed))
        # Outputs that announce devices (Home Assistant discovery) take them down; at start the
        # events wait for the ingest to exist.
        self.removed_devices += removed
        if hasattr(self, "ingest"):
            for eui in self.removed_devices:
                self.ingest.add_event("device_removed", {"devEui": eui})
            self.removed_devices = []

    async def load_downlinks(self) -> None:
        rows = await self.st.call(self.store.pending_downlinks)
        pend: dict[bytes, list[dict[str, Any]]] = {}
        for r in rows:
            pend.setdefault(bytes.fromhex(r["dev_eui"]), []).append(r)
        self.ingest.downlinks.queued = pend

    async def reload(self) -> dict[str, Any]:
        return await reload_.reload(self)

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
        try:
            await self.sync_devices_file()
        except StoreError as e:
            if "newer than this agent" in str(e):
                raise
            # A full disk (or a store started read-only for it) must not stop the start: the
            # devices already in the DB are used; the file is synced again on the next reload.
            log_event(log, logging.ERROR, "devices_sync_deferred", reason=e.reason, error=str(e))
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
        self.outputs = build_outputs(self)
        await forget_removed(self)
        if self.cfg.relay is not None:
            # chirpstack-api (protobuf, grpc) is imported only when a relay is configured.
            from gateway_agent.relay.service import Relay

            self.relay = Relay(self)
            self.outputs[self.relay.worker.name] = self.relay.worker
            self.ingest.relay_encode = self.relay.encode
        await self.st.call(self.ingest.load)
        await self.load_downlinks()
        if recovered is not None:
            self.ingest.add_event("database_recovered", recovered)
        for eui in self.removed_devices:
            self.ingest.add_event("device_removed", {"devEui": eui})
        self.removed_devices = []
        self.sources = self.build_sources()
        for src in self.sources:
            if hasattr(src, "on_refused"):  # GWMP: TX_ACK errors come back for an RX2 retry
                src.on_refused = self.ingest.downlinks.refused
        control = ControlServer(self.cfg.agent.control_path, self.cfg.agent.control_group)
        register(control, self)
        register_report(control, self)
        register_outputs(control, self)
        async with asyncio.TaskGroup() as tg:
            for src in self.sources:
                tg.create_task(src.run(self.frames, self.stop), name=f"source:{src.name}")
            tg.create_task(self.ingest.run(self.frames, self.stop), name="ingest")
            tg.create_task(self.forwarder.run(self.stop), name="forwarder")
            for w in self.outputs.values():
                tg.create_task(w.run(self.stop), name=f"output:{w.name}")
            if self.relay is not None:
                tg.create_task(self.relay.run(self.stop), name="relay")
            if self.cfg.relay is not None and self.cfg.relay.api_server is not None:
                # Passive mode's sessions from ChirpStack's API (grpc imported only then).
                from gateway_agent.relay.sessions import start_session_fetch

                start_session_fetch(self, tg)
            tg.create_task(control.run(self.stop), name="control")
            tg.create_task(timers(self, self.housekeeping.round), name="timers")
            tg.create_task(watchdog(self), name="watchdog")
            tg.create_task(reload_.reloader(self), name="reloader")
            tg.create_task(actions_worker(self), name="actions")
            if self.cfg.web is not None:
                # aiohttp is imported only when the console is configured.
                from gateway_agent.web.app import serve_web
                from gateway_agent.web.users import read_credentials

                creds = read_credentials(self.cfg.web)  # checked at start: ConfigError -> exit 1
                tg.create_task(
                    serve_web(self, self.cfg.web, creds, control.handlers, self.stop), name="web"
                )
            if self.cfg.metrics.listen:
                # prometheus_client is imported only when metrics are configured.
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
        await self.housekeeping.save_gateway_stats()

    def _on_commit(self) -> None:
        self.forwarder.notify_commit()
        for w in self.outputs.values():
            w.notify_commit()

    def _run_actions(self, alert: Alert, dev: Device) -> None:
        run_rule_actions(self, alert, dev)


def run(config_path: str) -> int:
    """Entry point of `gateway-agent run`. Bad config: one line and exit 1 (fail at start)."""
    os.umask(0o077)
    setup_logging("INFO")
    try:
        cfg = read_config(config_path)
        setup_logging(cfg.agent.log_level)
        preflight(cfg, create_state_dir=True)  # exactly what `config check` refuses
    except (ConfigError, OSError) as e:
        log_event(log, logging.ERROR, "config_invalid", error=str(e))
        return 1
    try:
        asyncio.run(Daemon(cfg).run())
    except StoreError as e:
        log_event(log, logging.ERROR, "store_failed", error=str(e))
        return 1
    except ConfigError as e:  # a file changed between the check above and its use at start
        log_event(log, logging.ERROR, "config_invalid", error=str(e))
        return 1
    return 0
