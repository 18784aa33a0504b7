"""The daemon's control commands (reads and live actions), registered on a ControlServer."""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Protocol

from gateway_agent.config import load_devices
from gateway_agent.config.downlinks import encode_object
from gateway_agent.rules.config import MAX_DOWNLINK
from gateway_agent.store import imports, views

if TYPE_CHECKING:
    from gateway_agent.config import Config
    from gateway_agent.daemon.control_server import ControlServer
    from gateway_agent.ingest import Ingest
    from gateway_agent.lorawan.radio import RadioFrame
    from gateway_agent.metrics import Counters
    from gateway_agent.sources import Source
    from gateway_agent.store import Store
    from gateway_agent.store.thread import StoreThread
    from gateway_agent.upstream.forwarder import Forwarder


class CommandHost(Protocol):
    """What the control commands read and drive in the daemon."""

    cfg: Config
    counters: Counters
    started: float
    started_mono: float
    stop: asyncio.Event
    st: StoreThread
    store: Store
    sources: list[Source]
    frames: asyncio.Queue[RadioFrame]
    ingest: Ingest
    forwarder: Forwarder

    def status_figures(self) -> dict[str, Any]: ...

    def healthy(self) -> bool: ...

    async def reload(self) -> dict[str, Any]: ...


def register(ctl: ControlServer, d: CommandHost) -> None:
    call = d.st.call
    store = d.store

    def live() -> dict[str, Any]:
        gateways: dict[str, Any] = {}
        sources = []
        for s in d.sources:
            st = s.stats()
            sources.append({"name": s.name, **{k: v for k, v in st.items() if k != "gateways"}})
            gateways.update(st.get("gateways", {}) if isinstance(st.get("gateways"), dict) else {})
        fw = d.forwarder
        return {
            "daemon": {
                "running": True,
                "pid": __import__("os").getpid(),
                "version": d.status_figures()["version"],
                "started": d.started,
                "uptime_s": round(time.monotonic() - d.started_mono, 1),
                "healthy": d.healthy(),
            },
            "sources": sources,
            "gateways": gateways,
            "upstream": {
                "host": d.cfg.upstream.host,
                "port": d.cfg.upstream.port,
                "tls": d.cfg.upstream.tls,
                "connected": fw.connected,
                "connected_since": fw.connected_since,
                "last_error": fw.last_error,
                "published": fw.published,
            },
            "ingest": {
                "accepted": d.ingest.accepted,
                "refused": d.ingest.refused,
                "queue": d.frames.qsize(),
            },
            "counters": d.counters.snapshot(),
            "store": {**d.store.space_state(), "damaged": dict(d.store.damaged)},
        }

    @ctl.command("ping")
    async def ping(req: dict[str, Any]) -> Any:
        return {"pong": True, "pid": __import__("os").getpid()}

    @ctl.command("status")
    async def status(req: dict[str, Any]) -> Any:
        lv = live()
        return await call(views.status_view, store, d.cfg.store.max_db_mb, lv)

    @ctl.command("counters")
    async def counters(req: dict[str, Any]) -> Any:
        return d.counters.snapshot()

    @ctl.command("devices")
    async def devices(req: dict[str, Any]) -> Any:
        return await call(views.devices_view, store)

    @ctl.command("devices_put")
    async def devices_put(req: dict[str, Any]) -> Any:
        devs = load_devices({"device": req["devices"]})
        fcnt = {str(k): int(v) for k, v in (req.get("fcnt_up") or {}).items()}
        n = await call(store.upsert_devices, devs, req.get("origin", "cli"), fcnt)
        await call(d.ingest.load)
        return {"upserted": n}

    @ctl.command("device_remove")
    async def device_remove(req: dict[str, Any]) -> Any:
        ok = await call(store.remove_device, bytes.fromhex(req["dev_eui"]))
        await call(d.ingest.load)
        if ok:  # outputs that announce devices (Home Assistant discovery) take them down
            d.ingest.add_event("device_removed", {"devEui": req["dev_eui"].lower()})
        return {"removed": ok}

    @ctl.command("readings")
    async def readings(req: dict[str, Any]) -> Any:
        dev = bytes.fromhex(req["dev_eui"]) if req.get("dev_eui") else None
        return await call(
            views.readings_view, store, dev, req.get("since"), int(req.get("limit", 1000))
        )

    @ctl.command("readings_import")
    async def readings_import(req: dict[str, Any]) -> Any:
        # History rows from `readings import` (the CLI chunks them under MAX_REQUEST): stored
        # by the store thread in one transaction per request, never forwarded.
        rows = imports.from_json(req.get("rows"))
        return await call(store.import_readings, rows, bool(req.get("dry_run")))

    @ctl.command("alerts")
    async def alerts(req: dict[str, Any]) -> Any:
        return await call(
            views.alerts_view, store, int(req.get("limit", 100)), bool(req.get("open", False))
        )

    @ctl.command("alert_ack")
    async def alert_ack(req: dict[str, Any]) -> Any:
        return {"acked": await call(store.ack_alert, req["id"])}

    @ctl.command("outbox")
    async def outbox(req: dict[str, Any]) -> Any:
        return await call(views.outbox_view, store)

    @ctl.command("outbox_retry")
    async def outbox_retry(req: dict[str, Any]) -> Any:
        d.forwarder.retry_now()
        return {"retrying": True}

    @ctl.command("downlink")
    async def downlink(req: dict[str, Any]) -> Any:
        # Hex `payload` + `f_port`, or an `object` the device's codec encodes (its
        # encodeDownlink: fPort from the codec, else `f_port`).
        if d.cfg.lorawan.mode == "passive":
            raise ValueError(
                'refused: [lorawan] mode = "passive": the central network server (ChirpStack)'
                " sends this device's downlinks; queue it there (its console or API: device >"
                " queue)"
            )
        eui = bytes.fromhex(req["dev_eui"])
        dev = d.ingest.devices.get(eui)
        if dev is None:
            raise ValueError(f"unknown device {req['dev_eui']}")
        if "object" in req:
            port = req.get("f_port")
            f_port, payload = encode_object(dev, req["object"], None if port is None else int(port))
        else:
            payload = bytes.fromhex(req["payload"])
            f_port = int(req["f_port"])
        if not 1 <= f_port <= 223:  # 0 is MAC-only, 224+ reserved
            raise ValueError(f"f_port must be 1-223, got {f_port}")
        if len(payload) > MAX_DOWNLINK:
            raise ValueError(f"payload is {len(payload)} bytes; at most {MAX_DOWNLINK} fit a frame")
        seq = await call(store.queue_downlink, eui, f_port, payload, bool(req.get("confirmed")))
        d.ingest.downlinks.enqueue(eui, seq, f_port, payload)
        return {"queued": seq, "f_port": f_port, "payload": payload.hex()}

    @ctl.command("reload")
    async def reload(req: dict[str, Any]) -> Any:
        return await d.reload()

    async def tail(req: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        rows = await call(store.readings, None, None, 1)
        last = rows[-1]["seq"] if rows else 0
        while not d.stop.is_set():
            rows = await call(views.readings_view, store, None, None, 500, last)
            for r in rows:
                last = r["seq"]
                writer.write(json.dumps(r, default=str).encode() + b"\n")
            await writer.drain()
            await asyncio.sleep(0.3)

    ctl.streams["readings_tail"] = tail

    @ctl.command("db_check")
    async def db_check(req: dict[str, Any]) -> Any:  # `doctor`: PRAGMA quick_check on the live DB
        return {"quick_check": await call(store.quick_check)}

    if __import__("os").environ.get("GATEWAY_AGENT_DEBUG") == "1":
        # Test hook (watchdog test): freeze the event loop like a stuck callback would.
        @ctl.command("debug_block_loop")
        async def debug_block_loop(req: dict[str, Any]) -> Any:
            seconds = min(float(req.get("seconds", 1.0)), 60.0)
            time.sleep(seconds)  # noqa: ASYNC251  (blocking the loop is the point)
            return {"blocked_s": seconds}
