"""Real destinations for the HTTP outputs' tests and benchmark: a private `influxd` (Debian's
influxdb 1.x) on free loopback ports, and a webhook receiver (a real aiohttp server in its own
thread) that records bodies, checks signatures and can answer 500 (or anything) for a while."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from hil.daemonproc import REPO
from hil.ports import free_port


def find_influxd() -> str | None:
    return shutil.which("influxd") or (
        "/usr/bin/influxd" if os.path.exists("/usr/bin/influxd") else None
    )


class Influxd:
    """One influxd 1.x with its meta/data/wal in `workdir`; stop and start keep port and data."""

    def __init__(self, workdir: Path | None = None, auth: bool = False) -> None:
        binary = find_influxd()
        if binary is None:
            raise RuntimeError("influxd is not installed: scripts/bootstrap.sh installs influxdb")
        self.binary = binary
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="ga-influxd-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.rpc_port = free_port()
        self.auth = auth
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "influxd.log"
        self.user: tuple[str, str] | None = None  # the admin the queries use once auth is on

    def _conf(self) -> Path:
        w = self.workdir
        conf = w / "influxd.conf"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{w}/meta"
[data]
  dir = "{w}/data"
  wal-dir = "{w}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if self.auth else "false"}
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"""
        )
        return conf

    def start(self, timeout_s: float = 30.0) -> None:
        conf = self._conf()
        self.proc = subprocess.Popen(
            [self.binary, "-config", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"influxd exited {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ping", timeout=0.5) as r:  # noqa: S310
                    if r.status == 204:
                        return
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise RuntimeError(f"influxd did not answer /ping on {self.port}: {self.tail()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def query(self, q: str, db: str | None = None, method: str = "GET") -> dict[str, Any]:
        """/query with epoch=ms; raises on an error answer."""
        params = {"q": q, "epoch": "ms"}
        if db:
            params["db"] = db
        auth = urllib.parse.urlencode(dict(zip("up", self.user, strict=True))) if self.user else ""
        data = urllib.parse.urlencode(params)
        if method == "POST":
            req = urllib.request.Request(
                f"{self.url}/query?{auth}", data=data.encode(), method="POST"
            )
        else:
            data += "&" + auth if auth else ""
            req = urllib.request.Request(self.url + "/query?" + data)
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (loopback)
            doc: dict[str, Any] = json.loads(r.read())
        for res in doc.get("results", []):
            if "error" in res:
                raise RuntimeError(res["error"])
        return doc

    def create_db(self, name: str) -> None:
        self.query(f'CREATE DATABASE "{name}"', method="POST")

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """A query's points as dicts (column -> value), every series of every result."""
        out: list[dict[str, Any]] = []
        for res in self.query(q, db).get("results", []):
            for s in res.get("series", []):
                for v in s.get("values", []):
                    row = dict(zip(s["columns"], v, strict=True))
                    row.update(s.get("tags") or {})
                    row["_measurement"] = s.get("name")
                    out.append(row)
        return out

    def write(self, lines: str, db: str) -> int:
        """A raw write (precision ms), for tests that prepare the database; the status."""
        url = f"{self.url}/write?" + urllib.parse.urlencode({"db": db, "precision": "ms"})
        req = urllib.request.Request(url, data=lines.encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)


class WebhookReceiver:
    """A real aiohttp server on 127.0.0.1 in its own thread. Records every request (kind, id,
    body, whether the signature matched); answers `status` (200 unless told otherwise)."""

    def __init__(self, secret: bytes | None = None, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.status = 200
        self.requests: list[dict[str, Any]] = []  # every request, whatever it was answered
        self.lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _hook(self, req: web.Request) -> web.Response:
        body = await req.read()
        sig = req.headers.get("X-Gateway-Agent-Signature")
        good = None
        if self.secret is not None:
            want = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            good = sig is not None and hmac.compare_digest(sig, want)
        with self.lock:
            status = self.status
            self.requests.append(
                {
                    "status": status,
                    "kind": req.headers.get("X-Gateway-Agent-Kind"),
                    "id": req.headers.get("X-Gateway-Agent-Id"),
                    "content_type": req.headers.get("Content-Type"),
                    "signature": sig,
                    "signed_ok": good,
                    "body": body,
                }
            )
        if 200 <= status < 300:
            return web.Response(status=status, text="ok")
        return web.Response(status=status, text=f"receiver says {status}")

    def start(self) -> WebhookReceiver:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("webhook receiver did not start")
        return self

    def delivered(self) -> list[dict[str, Any]]:
        """The requests answered 2xx, with their JSON bodies parsed (`msg`)."""
        with self.lock:
            got = [dict(r) for r in self.requests if 200 <= r["status"] < 300]
        for r in got:
            r["msg"] = json.loads(r["body"])
        return got

    def answered(self, status: int) -> int:
        with self.lock:
            return sum(1 for r in self.requests if r["status"] == status)

    def close(self) -> None:
        async def _stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def secret_file(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def agent_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`gateway-agent -c CONFIG ARGS...` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(config), *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, stdin=subprocess.DEVNULL,
    )  # fmt: skip
