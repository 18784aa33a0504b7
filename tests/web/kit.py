"""A web console over real parts: a Store on a tmp file, the store thread, Counters, a loaded
Config, a real Ingest and Forwarder (not connected) and the daemon's own control commands,
served by aiohttp on 127.0.0.1 from an event loop in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway_agent.config import load_config, load_devices
from gateway_agent.daemon.commands import register
from gateway_agent.daemon.control_server import ControlServer
from gateway_agent.ingest import Ingest
from gateway_agent.ingest.stage import Stage
from gateway_agent.lorawan.radio import RxInfo
from gateway_agent.metrics import Counters
from gateway_agent.model import Alert, Reading
from gateway_agent.store import Store
from gateway_agent.store.thread import StoreThread
from gateway_agent.upstream.forwarder import Forwarder
from gateway_agent.web import load_web_settings, read_credentials
from gateway_agent.web.app import serve_web
from gateway_agent.web.users import hash_password

NWK = "2b7e151628aed2a6abf7158809cf4f3c"  # key material: must never appear in a response
APP = "000102030405060708090a0b0c0d0e0f"
EUI1, EUI2 = "70b3d57ed0000001", "70b3d57ed0000002"
PASSWORDS = {"olga": "operator-pass-1", "vic": "viewer-pass-1"}
TOKEN = "t" * 40


def devices_doc() -> dict[str, Any]:
    return {
        "device": [
            {
                "dev_eui": EUI1,
                "name": "P7 classroom",
                "class": "co2",
                "codec": "cayenne-lpp",
                "tags": ["fife", "school-017"],
                "dev_addr": "26011bda",
                "nwk_s_key": NWK,
                "app_s_key": APP,
            },
            {
                "dev_eui": EUI2,
                "name": "Boiler room <b>probe</b>",
                "class": "legionella",
                "join_eui": "70b3d57ed0000000",
                "app_key": APP,
            },
        ]
    }


class Host:
    """What the daemon is to the console and to the control commands, from real parts."""

    def __init__(self, tmp: Path) -> None:
        self.cfg = load_config(
            {
                "agent": {"gateway_id": "test-gw", "state_dir": str(tmp / "state")},
                "upstream": {"host": "127.0.0.1", "port": 1},
            }
        )
        self.cfg.agent.state_dir.mkdir(parents=True, exist_ok=True)
        self.counters = Counters()
        self.started = time.time()
        self.started_mono = time.monotonic()
        self.stop = asyncio.Event()
        self.st = StoreThread()
        self.sources: list[Any] = []
        self.frames: asyncio.Queue[Any] = asyncio.Queue(maxsize=10)

    async def open(self) -> None:
        self.store = await self.st.call(Store, self.cfg.agent.db_path)
        self.devices = load_devices(devices_doc())
        await self.st.call(self.store.upsert_devices, self.devices, "file")
        self.forwarder = Forwarder(
            self.cfg.upstream,
            self.cfg.agent.gateway_id,
            self.store,
            self.st.call,
            self.counters,
            self.status_figures,
        )
        self.ingest = Ingest(
            self.cfg, self.store, self.st.call, self.counters, lambda tx: False, lambda: None
        )
        await self.st.call(self.ingest.load)
        self.ctl = ControlServer(self.cfg.agent.control_path)
        register(self.ctl, self)

    def status_figures(self) -> dict[str, Any]:
        return {"version": "0.1.0", "uptimeS": 1, "accepted": 0, "published": 0, "devices": 2}

    def healthy(self) -> bool:
        return True

    async def reload(self) -> dict[str, Any]:
        return {}

    def stage_readings(self, eui: str, points: list[tuple[float, dict[str, float]]]) -> None:
        """Commit readings (through the ingest's Stage: the rows ingest writes), store thread."""
        dev = next(d for d in self.devices if d.dev_eui.hex() == eui)
        stage = Stage(self.cfg, self.counters)
        for i, (t, ms) in enumerate(points):
            rx = RxInfo("0016c001ff10a235", 0.0, t, 868_100_000, rssi_dbm=-97.0, snr_db=7.5)
            fcnt = int(t) % 1_000_000 + i
            stage.reading(
                dev,
                Reading(
                    id=f"{eui}-00000000-{fcnt}",
                    dev_eui=dev.dev_eui,
                    dev_addr=bytes.fromhex("26011bda"),
                    fcnt=fcnt,
                    f_port=1,
                    payload=b"\x01\x02",
                    time=t,
                    measurements=ms,
                    rx=(rx,),
                ),
            )
        b, _ = stage.take()
        self.store.commit_batch(b)

    def stage_alert(self, eui: str, rule: str, t: float) -> str:
        stage = Stage(self.cfg, self.counters)
        a = Alert(
            id=f"{eui}:{rule}:raised:{int(t)}",
            dev_eui=bytes.fromhex(eui),
            rule=rule,
            state="raised",
            severity="warning",
            measurement="co2_ppm",
            value=1800.0,
            time=t,
        )
        stage.alert(a, None)
        b, _ = stage.take()
        self.store.commit_batch(b)
        return a.id


class ConsoleServer:
    """The console on 127.0.0.1 (port 0) in a thread with its own loop; `run` calls into it."""

    def __init__(self, tmp: Path, web: dict[str, Any] | None = None, auth: bool = True) -> None:
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.web = dict(web or {})
        if auth:
            users = tmp / "users.toml"
            users.write_text(
                "".join(
                    f'[[user]]\nname = "{n}"\nrole = "{r}"\npassword = "{hash_password(p)}"\n'
                    for n, r, p in (
                        ("olga", "operator", PASSWORDS["olga"]),
                        ("vic", "viewer", PASSWORDS["vic"]),
                    )
                )
            )
            os.chmod(users, 0o600)
            token = tmp / "token"
            token.write_text(TOKEN + "\n")
            os.chmod(token, 0o600)
            self.web.setdefault("users_file", str(users))
            self.web.setdefault("token_file", str(token))
        self.web.setdefault("listen", "127.0.0.1:0")
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="web-test", daemon=True)
        self._error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as e:  # surfaced to the test by start()
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        self.host = Host(self.tmp)
        await self.host.open()
        settings = load_web_settings(self.web)
        creds = read_credentials(settings)

        def started(port: int) -> None:
            self.port = port
            self._ready.set()

        try:
            await serve_web(
                self.host, settings, creds, self.host.ctl.handlers, self.host.stop, started
            )
        finally:
            await self.host.st.call(self.host.store.close)
            self.host.st.close()

    def start(self) -> ConsoleServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self.port, "the console did not start"
        return self

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.host.stop.set)
        self._thread.join(15)

    def store_call(self, fn: Any, *args: Any) -> Any:
        """Run `fn` on the store thread (from the test thread), as the daemon would."""
        return asyncio.run_coroutine_threadsafe(self.host.st.call(fn, *args), self.loop).result(30)

    def command(self, name: str, **req: Any) -> Any:
        """A control command's answer: what the CLI's --json prints while the daemon runs."""
        h = self.host.ctl.handlers[name]
        return asyncio.run_coroutine_threadsafe(h({"cmd": name, **req}), self.loop).result(30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def console(tmp: Path, **kw: Any) -> Iterator[ConsoleServer]:
    s = ConsoleServer(tmp, **kw).start()
    try:
        yield s
    finally:
        s.close()


class Client:
    """A tiny HTTP client that keeps the session cookie (even though it is Secure: loopback)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        h = dict(headers or {})
        if self.cookie and "Cookie" not in h:
            h["Cookie"] = self.cookie
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        for k, v in r.getheaders():
            if k.lower() == "set-cookie" and v.startswith("ga_session="):
                self.cookie = v.split(";", 1)[0]
        conn.close()
        return r.status, hdrs, data

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, **kw)

    def csrf(self, path: str = "/login") -> str:
        import re

        _, _, body = self.get(path)
        m = re.search(rb'name="csrf" value="([^"]+)"', body)
        assert m, body[:500]
        return m.group(1).decode()

    def post_form(
        self, path: str, fields: dict[str, str], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        from urllib.parse import urlencode

        h = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        return self.request("POST", path, body=urlencode(fields), headers=h)

    def login(self, user: str) -> None:
        token = self.csrf("/login")
        status, hdrs, body = self.post_form(
            "/login", {"csrf": token, "username": user, "password": PASSWORDS[user], "next": "/"}
        )
        assert status == 303, (status, body[:300])

    def json(self, path: str, **kw: Any) -> Any:
        status, _, body = self.get(path, **kw)
        assert status == 200, (status, body[:300])
        return json.loads(body)
