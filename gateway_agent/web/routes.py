"""The HTML pages and their form actions (sign in/out, acknowledge, retry, queue a downlink)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway_agent.config.downlinks import can_encode
from gateway_agent.logfmt import log_event
from gateway_agent.reports.html import render_html
from gateway_agent.reports.render import render_csv, render_json
from gateway_agent.reports.report import KINDS
from gateway_agent.reports.request import run_request
from gateway_agent.store import views
from gateway_agent.web import pages
from gateway_agent.web.chart import RANGES, downsample
from gateway_agent.web.console import PRINCIPAL, SESSION, BadRequest, Console
from gateway_agent.web.layout import login_page
from gateway_agent.web.users import MAX_PASSWORD, verify_password

log = logging.getLogger(__name__)

EUI = re.compile(r"[0-9a-f]{16}")
MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
MAX_CHART_ROWS = 20_000  # per device page: bounded work on the store thread
MAX_OBJECT = 4000  # characters of a downlink object (a frame holds at most 222 bytes)
REPORT_TYPES = {"html": "text/html", "csv": "text/csv", "json": "application/json"}


def dev_eui(raw: str) -> str:
    eui = raw.lower()
    if not EUI.fullmatch(eui):
        raise web.HTTPNotFound(text="no such device")
    return eui


async def find_device(c: Console, eui: str) -> dict[str, Any]:
    rows = await c.cmd("devices")
    row = next((r for r in rows if r["dev_eui"] == eui), None)
    if row is None:
        raise web.HTTPNotFound(text="no such device")
    return dict(row)


def object_arg(text: str) -> dict[str, Any]:
    """A downlink object from a form or JSON field: a JSON object of bounded size."""
    if len(text) > MAX_OBJECT:
        raise BadRequest(f"object: longer than {MAX_OBJECT} characters")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise BadRequest(f"object: not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadRequest(f"object: expected a JSON object, got {type(obj).__name__}")
    return obj


def month_arg(request: web.Request) -> str:
    month = request.query.get("month") or dt.date.today().strftime("%Y-%m")
    if not MONTH.fullmatch(month):
        raise BadRequest("month: expected YYYY-MM")
    return month


async def report(c: Console, kind: str, month: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise web.HTTPNotFound(text="no such report")
    cfg = c.host.cfg
    async with c.reports_lock:
        try:
            out: dict[str, Any] = await asyncio.to_thread(
                run_request, cfg.agent.db_path, {"kind": kind, "month": month}, cfg.reports
            )
        except ValueError as e:
            raise BadRequest(str(e)) from e
    return out


def add(app: web.Application, c: Console) -> None:
    r = app.router

    async def login_form(request: web.Request) -> web.StreamResponse:
        if request[PRINCIPAL].via == "session":
            raise web.HTTPSeeOther("/")
        nxt = request.query.get("next", "/")
        return web.Response(
            text=login_page(request[SESSION].csrf, nxt, gateway_id=c.gateway_id),
            content_type="text/html",
        )

    async def login(request: web.Request) -> web.StreamResponse:
        form = await request.post()
        user, pw = str(form.get("username", ""))[:64], str(form.get("password", ""))
        nxt = str(form.get("next", "/"))
        if not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
            nxt = "/"  # never an open redirect
        client = request.remote or "?"
        wait = c.limiter.retry_after(client, c.clock())
        if wait:
            log_event(log, logging.WARNING, "web_login_limited", client=client)
            return web.Response(
                status=429,
                text=login_page(
                    request[SESSION].csrf, nxt, "Too many attempts: wait a minute.", c.gateway_id
                ),
                content_type="text/html",
                headers={"Retry-After": str(int(wait))},
            )
        u = c.creds.users.get(user)
        # The hash runs even for an unknown user (same time either way), off the event loop.
        stored = u.password_hash if u else _DUMMY
        ok = len(pw) <= MAX_PASSWORD and await asyncio.to_thread(verify_password, pw, stored)
        if not (ok and u):
            c.limiter.failed(client, c.clock())
            log_event(log, logging.WARNING, "web_login_failed", client=client)
            return web.Response(
                status=401,
                text=login_page(
                    request[SESSION].csrf, nxt, "Wrong user or password.", c.gateway_id
                ),
                content_type="text/html",
            )
        c.limiter.succeeded(client)
        request[SESSION] = c.sessions.sign_in(request[SESSION], u.name, u.role, c.clock())
        log_event(log, logging.INFO, "web_login", user=u.name, role=u.role)
        raise web.HTTPSeeOther(nxt)

    async def logout(request: web.Request) -> web.StreamResponse:
        c.sessions.drop(request[SESSION].sid)
        request[SESSION] = c.sessions.visitor(c.clock())
        raise web.HTTPSeeOther("/login")

    async def overview(request: web.Request) -> web.StreamResponse:
        st = await c.cmd("status")
        return c.page(request, "Overview", pages.overview_body(st, time.time()), script=True)

    async def checks(request: web.Request) -> web.StreamResponse:
        st = await c.cmd("status")
        return web.Response(text=pages.checks_fragment(st, time.time()), content_type="text/html")

    async def gateways(request: web.Request) -> web.StreamResponse:
        st = await c.cmd("status")
        return c.page(request, "Gateways", pages.gateways_body(st, time.time()))

    async def devices(request: web.Request) -> web.StreamResponse:
        q = request.query.get("q", "")[:100]
        try:
            page_no = int(request.query.get("page", "1"))
        except ValueError:
            page_no = 1
        rows = await c.cmd("devices")
        return c.page(request, "Devices", pages.devices_body(rows, q, page_no, time.time()))

    async def device(request: web.Request) -> web.StreamResponse:
        eui = dev_eui(request.match_info["eui"])
        dev = await find_device(c, eui)
        rng = request.query.get("range", "24h")
        if rng not in RANGES:
            rng = "24h"
        now = time.time()
        t0 = now - RANGES[rng]
        rows = await c.host.st.call(
            views.readings_view, c.host.store, bytes.fromhex(eui), t0, MAX_CHART_ROWS
        )
        series = downsample(rows, t0, now)
        alerts = [a for a in await c.cmd("alerts", limit=1000) if a["dev_eui"] == eui][:50]
        who = request[PRINCIPAL]
        body = pages.device_body(
            dev,
            series,
            rng,
            alerts,
            len(rows) >= MAX_CHART_ROWS,
            request[SESSION].csrf,
            who.operator,
            now,
            encodes=who.operator and can_encode(dev.get("codec")),
            queued=request.query,
        )
        return c.page(request, "Device", body)

    async def alerts(request: web.Request) -> web.StreamResponse:
        rows = await c.cmd("alerts", limit=200)
        body = pages.alert_rows(rows, request[SESSION].csrf, request[PRINCIPAL].operator)
        return c.page(request, "Alerts", body if rows else "<p>No alerts.</p>")

    async def ack(request: web.Request) -> web.StreamResponse:
        c.operator(request)
        form = await request.post()
        alert_id = str(form.get("id", ""))
        if not alert_id or len(alert_id) > 200:
            raise BadRequest("id: expected an alert id")
        await c.cmd("alert_ack", id=alert_id)
        raise web.HTTPSeeOther("/alerts")

    async def live_page(request: web.Request) -> web.StreamResponse:
        return c.page(request, "Live readings", pages.live_body(), script=True)

    async def outbox(request: web.Request) -> web.StreamResponse:
        st = await c.cmd("status")
        body = pages.outbox_body(st, request[SESSION].csrf, request[PRINCIPAL].operator)
        return c.page(request, "Outbox and upstream", body)

    async def retry(request: web.Request) -> web.StreamResponse:
        c.operator(request)
        await c.cmd("outbox_retry")
        raise web.HTTPSeeOther("/outbox")

    async def downlink(request: web.Request) -> web.StreamResponse:
        c.operator(request)
        eui = dev_eui(request.match_info["eui"])
        form = await request.post()
        confirmed = form.get("confirmed") == "1"
        if "object" in form:  # through the device's codec (encodeDownlink)
            obj = object_arg(str(form.get("object", "")))
            port = str(form.get("f_port", "")).strip()
            try:
                f_port = int(port) if port else None
            except ValueError:
                raise BadRequest("f_port: expected an integer 1-223 or nothing") from None
            ans = await c.cmd(
                "downlink", dev_eui=eui, object=obj, f_port=f_port, confirmed=confirmed
            )
            shown = {"queued": ans["queued"], "fport": ans["f_port"], "bytes": ans["payload"]}
            raise web.HTTPSeeOther(f"/devices/{eui}?{urlencode(shown)}")
        try:
            f_port = int(str(form.get("f_port", "")))
        except ValueError:
            raise BadRequest("f_port: expected an integer 1-223") from None
        await c.cmd(
            "downlink",
            dev_eui=eui,
            f_port=f_port,
            payload=str(form.get("payload", ""))[:1000],
            confirmed=confirmed,
        )
        raise web.HTTPSeeOther(f"/devices/{eui}")

    async def reports(request: web.Request) -> web.StreamResponse:
        body = pages.reports_body(sorted(KINDS), month_arg(request))
        return c.page(request, "Reports", body)

    async def report_file(request: web.Request) -> web.StreamResponse:
        kind, fmt = request.match_info["kind"], request.match_info["fmt"]
        if fmt not in REPORT_TYPES:
            raise web.HTTPNotFound()
        month = month_arg(request)
        rep = await report(c, kind, month)
        text = (
            render_html(rep, site=c.gateway_id)
            if fmt == "html"
            else render_csv(rep)
            if fmt == "csv"
            else render_json(rep)
        )
        return web.Response(
            text=text,
            content_type=REPORT_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{kind}-{month}.{fmt}"'},
        )

    async def doctor(request: web.Request) -> web.StreamResponse:
        from gateway_agent import doctor as dr

        st = await c.cmd("status")
        loop = asyncio.get_running_loop()

        def quick_check() -> str:
            fut = asyncio.run_coroutine_threadsafe(c.cmd("db_check"), loop)
            return str(fut.result(timeout=120)["quick_check"])

        results = await asyncio.to_thread(dr.run_checks, c.host.cfg, st, quick_check, None, 3.0)
        return c.page(request, "Doctor", pages.doctor_body([x.as_dict() for x in results]))

    r.add_get("/login", login_form)
    r.add_post("/login", login)
    r.add_post("/logout", logout)
    r.add_get("/", overview)
    r.add_get("/partial/checks", checks)
    r.add_get("/gateways", gateways)
    r.add_get("/devices", devices)
    r.add_get("/devices/{eui}", device)
    r.add_post("/devices/{eui}/downlink", downlink)
    r.add_get("/alerts", alerts)
    r.add_post("/alerts/ack", ack)
    r.add_get("/live", live_page)
    r.add_get("/outbox", outbox)
    r.add_post("/outbox/retry", retry)
    r.add_get("/reports", reports)
    r.add_get("/reports/{kind}.{fmt}", report_file)
    r.add_get("/doctor", doctor)


# Checked when the user is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
