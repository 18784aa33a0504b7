"""`Console`: the state one web console holds (host, settings, credentials, sessions, the login
limiter) and the helpers its routes share: run a control command, answer JSON or a page."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway_agent.errors import AgentError
from gateway_agent.web.auth import LoginLimiter, Principal, Session, Sessions
from gateway_agent.web.host import Commands, WebHost
from gateway_agent.web.layout import page
from gateway_agent.web.settings import WebSettings
from gateway_agent.web.users import Credentials

MAX_STREAMS = 16  # live-reading streams at once; one more gets 503

try:  # aiohttp >= 3.12: typed request keys (plain strings still work, with a warning)
    from aiohttp.web import RequestKey

    SESSION: Any = RequestKey("session", Session)
    PRINCIPAL: Any = RequestKey("principal", Principal)
except ImportError:  # pragma: no cover
    SESSION, PRINCIPAL = "session", "principal"


class BadRequest(Exception):
    """A request the console refuses with 400 and this one-line reason."""


class Console:
    def __init__(
        self,
        host: WebHost,
        settings: WebSettings,
        creds: Credentials,
        commands: Commands,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.settings = settings
        self.creds = creds
        self.commands = commands
        self.clock = clock
        self.sessions = Sessions.for_settings(settings)
        self.limiter = LoginLimiter(settings.login_failures_per_min)
        self.reports_lock = asyncio.Lock()  # one report at a time, like the control command
        self.streams = 0

    @property
    def gateway_id(self) -> str:
        return self.host.cfg.agent.gateway_id

    async def cmd(self, name: str, **req: Any) -> Any:
        """A control command, exactly as the CLI's --json gets it over the socket."""
        h = self.commands.get(name)
        if h is None:
            raise web.HTTPServiceUnavailable(text=f"{name} is not available")
        try:
            return await h({"cmd": name, **req})
        except (AgentError, ValueError, KeyError, TypeError) as e:
            raise BadRequest(str(e) or type(e).__name__) from e

    @staticmethod
    def json(obj: Any, status: int = 200) -> web.Response:
        # The CLI's emit(): json.dumps(default=str, ensure_ascii=False)
        return web.Response(
            text=json.dumps(obj, default=str, ensure_ascii=False),
            status=status,
            content_type="application/json",
        )

    def page(
        self,
        request: web.Request,
        title: str,
        body: str,
        *,
        script: bool = False,
        status: int = 200,
    ) -> web.Response:
        who: Principal = request[PRINCIPAL]
        sess: Session = request[SESSION]
        html = page(
            title,
            body,
            path=request.path,
            user=who.name if who.via == "session" else None,
            role=who.role,
            csrf=sess.csrf,
            gateway_id=self.gateway_id,
            script=script,
        )
        return web.Response(text=html, content_type="text/html", status=status)

    @staticmethod
    def operator(request: web.Request) -> Principal:
        who: Principal = request[PRINCIPAL]
        if not who.operator:
            raise web.HTTPForbidden(text="operators only")
        return who
