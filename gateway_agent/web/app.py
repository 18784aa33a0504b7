"""The aiohttp application: the guard every request passes (host, who, CSRF, headers), the
routes of api.py, pages.py and live.py, and `serve_web`, a task for the daemon's TaskGroup."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from gateway_agent.logfmt import log_event
from gateway_agent.web import api, live, routes
from gateway_agent.web.auth import COOKIE, Principal, csrf_ok, token_ok
from gateway_agent.web.console import PRINCIPAL, SESSION, BadRequest, Console
from gateway_agent.web.host import Commands, WebHost
from gateway_agent.web.layout import login_page
from gateway_agent.web.settings import WebSettings
from gateway_agent.web.users import Credentials

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # forms and JSON commands are small; 413 past this
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = ("/login", "/static/")
STATIC = {"style.css": "text/css", "app.js": "text/javascript"}
HEADERS = {
    # Everything is served from the package: no CDN, no inline script, no framing.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # no-referrer would make forms send `Origin: null`
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _allowed_hosts(s: WebSettings) -> frozenset[str] | None:
    """Host names accepted on a loopback console without auth (DNS rebinding: a page on
    another site must not reach it through a name that resolves to 127.0.0.1)."""
    if s.auth or not s.loopback:
        return None
    return frozenset({"127.0.0.1", "localhost", "[::1]", s.host})


def _host_name(host: str) -> str:
    """`Host` without its port (`[::1]:8080` -> `[::1]`)."""
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def _guard(c: Console) -> Any:  # an aiohttp middleware
    hosts = _allowed_hosts(c.settings)
    token = c.creds.token.reveal_bytes() if c.creds.token is not None else None

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if hosts is not None and _host_name(request.host).lower() not in hosts:
            return web.Response(status=421, text="misdirected request")
        now = c.clock()
        sess = c.sessions.get(request.cookies.get(COOKIE), now)
        new_cookie = sess is None
        if sess is None:
            sess = c.sessions.visitor(now)
        request[SESSION] = sess
        who: Principal | None = None
        if token_ok(token, request.headers.get("Authorization")):
            who = Principal("token", c.creds.token_role, "token")
        elif sess.user is not None and sess.role is not None:
            who = Principal(sess.user, sess.role, "session")
        elif not c.settings.auth:
            who = Principal("local", "operator", "open")
        public = request.path == "/login" or request.path.startswith("/static/")
        try:
            if who is None and not public:
                resp = _unauthorized(c, request)
            else:
                request[PRINCIPAL] = who or Principal("", "", "none")
                # Every state change from a browser carries the session's CSRF token (sign-in
                # too: no login CSRF); a bearer token is not ambient, so it needs none.
                if request.method not in SAFE and (who is None or who.via != "token"):
                    _check_csrf(request, sess.csrf, await _sent_csrf(request))
                resp = await handler(request)
        except BadRequest as e:
            resp = (
                c.json({"error": str(e)}, 400)
                if request.path.startswith("/api/")
                else (web.Response(status=400, text=f"bad request: {e}"))
            )
        except web.HTTPException as e:  # answered as a plain response (headers added below)
            resp = web.Response(status=e.status, text=e.text, headers=e.headers)
        if not resp.prepared:
            for k, v in HEADERS.items():
                resp.headers.setdefault(k, v)
            if not request.path.startswith("/static/"):
                resp.headers.setdefault("Cache-Control", "no-store")
            cur = request.get(SESSION, sess)
            if new_cookie or cur is not sess:
                _set_cookie(c, resp, cur.sid)
        return resp

    return guard


def _set_cookie(c: Console, resp: web.StreamResponse, sid: str) -> None:
    # Secure: browsers keep Secure cookies for https and for loopback http (a secure context).
    resp.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        secure=True,
        samesite="Strict",
        path="/",
        max_age=int(c.settings.session_max_h * 3600),
    )


def _unauthorized(c: Console, request: web.Request) -> web.StreamResponse:
    if request.path.startswith("/api/") or request.method not in SAFE:
        return web.json_response(
            {"error": "sign in or send a bearer token"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="gateway-agent"'},
        )
    nxt = request.path_qs if request.path_qs.startswith("/") else "/"
    return web.Response(
        status=401,
        text=login_page(request[SESSION].csrf, nxt, gateway_id=c.gateway_id),
        content_type="text/html",
    )


async def _sent_csrf(request: web.Request) -> str | None:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        form = await request.post()
        v = form.get("csrf")
        sent = v if isinstance(v, str) else None
    return sent


def _check_csrf(request: web.Request, expected: str, sent: str | None) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin.split("://", 1)[-1] != request.host:
        raise web.HTTPForbidden(text="cross-origin request refused")
    if not csrf_ok(request[SESSION], sent):
        raise web.HTTPForbidden(text="missing or wrong CSRF token")


def _static_files() -> dict[str, bytes]:
    base = resources.files("gateway_agent.web") / "static"
    return {name: (base / name).read_bytes() for name in STATIC}


def build_app(
    host: WebHost, settings: WebSettings, creds: Credentials, commands: Commands
) -> web.Application:
    c = Console(host, settings, creds, commands)
    app = web.Application(middlewares=[_guard(c)], client_max_size=MAX_BODY)
    files = _static_files()

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:  # a fixed set: no path is ever joined from the request
            raise web.HTTPNotFound()
        return web.Response(
            body=files[name],
            content_type=STATIC[name],
            headers={"Cache-Control": "max-age=3600"},
        )

    app.router.add_get("/static/{name}", static)
    routes.add(app, c)
    api.add(app, c)
    live.add(app, c)
    return app


def tls_context(s: WebSettings) -> ssl.SSLContext | None:
    if s.tls_cert is None or s.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(s.tls_cert, s.tls_key)
    return ctx


async def serve_web(
    host: WebHost,
    settings: WebSettings,
    creds: Credentials,
    commands: Commands,
    stop: asyncio.Event,
    started: Callable[[int], None] | None = None,
) -> None:
    """Serve until `stop` is set (a task in the daemon's TaskGroup). `started` gets the port."""
    app = build_app(host, settings, creds, commands)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port, ssl_context=tls_context(settings))
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else settings.port
        log_event(
            log,
            logging.INFO,
            "web_listening",
            listen=f"{settings.host}:{port}",
            tls=settings.tls,
            auth=settings.auth,
        )
        if started is not None:
            started(port)
        await stop.wait()
    finally:
        await runner.cleanup()
