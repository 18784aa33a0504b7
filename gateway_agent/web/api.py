"""The JSON API: the CLI's --json output (public contract) over HTTP, from the same control
commands. `GET /api/status` is `gateway-agent status --json`, and so on."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway_agent.reports.report import KINDS
from gateway_agent.web.console import BadRequest, Console
from gateway_agent.web.routes import dev_eui, find_device, month_arg, report

MAX_ALERTS = 100_000


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise BadRequest("expected a JSON body (Content-Type: application/json)")
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"bad JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object")
    return body


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ALERTS:
        raise BadRequest(f"limit: expected an integer 1-{MAX_ALERTS}")
    return int(raw)


def add(app: web.Application, c: Console) -> None:
    r = app.router

    async def status(request: web.Request) -> web.StreamResponse:
        return c.json(await c.cmd("status"))

    async def devices(request: web.Request) -> web.StreamResponse:
        return c.json(await c.cmd("devices"))

    async def device(request: web.Request) -> web.StreamResponse:
        return c.json(await find_device(c, dev_eui(request.match_info["eui"])))

    async def alerts(request: web.Request) -> web.StreamResponse:
        only_open = request.query.get("open", "") in ("1", "true")
        return c.json(await c.cmd("alerts", limit=_limit(request), open=only_open))

    async def ack(request: web.Request) -> web.StreamResponse:
        c.operator(request)
        alert_id = request.match_info["id"]
        out = await c.cmd("alert_ack", id=alert_id)
        return c.json(out, 200 if out.get("acked") else 404)

    async def outbox(request: web.Request) -> web.StreamResponse:
        return c.json(await c.cmd("outbox"))

    async def retry(request: web.Request) -> web.StreamResponse:
        c.operator(request)
        return c.json(await c.cmd("outbox_retry"))

    async def downlink(request: web.Request) -> web.StreamResponse:
        c.operator(request)
        eui = dev_eui(request.match_info["eui"])
        body = await _json_body(request)
        f_port, payload = body.get("f_port"), body.get("payload")
        confirmed = bool(body.get("confirmed"))
        if "object" in body:  # {"object": {...}, "f_port"?: N}: the codec's encodeDownlink
            obj = body["object"]
            if not isinstance(obj, dict):
                raise BadRequest("object: expected a JSON object")
            if f_port is not None and (isinstance(f_port, bool) or not isinstance(f_port, int)):
                raise BadRequest("f_port: expected an integer 1-223 or nothing")
            return c.json(
                await c.cmd("downlink", dev_eui=eui, object=obj, f_port=f_port, confirmed=confirmed)
            )
        if isinstance(f_port, bool) or not isinstance(f_port, int):
            raise BadRequest("f_port: expected an integer 1-223")
        if not isinstance(payload, str):
            raise BadRequest("payload: expected hex")
        return c.json(
            await c.cmd(
                "downlink",
                dev_eui=eui,
                f_port=f_port,
                payload=payload,
                confirmed=confirmed,
            )
        )

    async def reports(request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if kind not in KINDS:
            raise web.HTTPNotFound(text="no such report")
        return c.json(await report(c, kind, month_arg(request)))

    r.add_get("/api/status", status)
    r.add_get("/api/devices", devices)
    r.add_get("/api/devices/{eui}", device)
    r.add_post("/api/devices/{eui}/downlink", downlink)
    r.add_get("/api/alerts", alerts)
    r.add_post("/api/alerts/{id}/ack", ack)
    r.add_get("/api/outbox", outbox)
    r.add_post("/api/outbox/retry", retry)
    r.add_get("/api/reports/{kind}", reports)
