"""The console against a real aiohttp server on 127.0.0.1 over a real Store: no page or API
without a session or token, CSRF, roles, no key material anywhere, hostile input, login flood."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.kit import APP, EUI1, EUI2, NWK, PASSWORDS, TOKEN, Client, ConsoleServer, console

PAGES = ["/", "/gateways", "/devices", f"/devices/{EUI1}", "/alerts", "/live", "/outbox",
         "/reports", "/doctor", "/partial/checks", "/live/events", "/reports/co2.csv?month=2026-01"]  # fmt: skip
API = ["/api/status", "/api/devices", f"/api/devices/{EUI1}", "/api/alerts", "/api/outbox",
       "/api/reports/co2?month=2026-01"]  # fmt: skip
POSTS = ["/alerts/ack", "/outbox/retry", f"/devices/{EUI1}/downlink", "/api/outbox/retry",
         "/api/alerts/x/ack", f"/api/devices/{EUI1}/downlink", "/logout"]  # fmt: skip
KEYS = [NWK, APP]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    with console(tmp_path_factory.mktemp("web")) as s:
        now = time.time()
        pts = [(now - i * 900, {"co2_ppm": 500.0 + i, "temperature_c": 20.5}) for i in range(300)]
        s.store_call(s.host.stage_readings, EUI1, pts)
        s.store_call(s.host.stage_alert, EUI1, "co2_high", now - 60)
        yield s


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", PAGES + API)
def test_nothing_without_a_session_or_token(srv: ConsoleServer, path: str) -> None:
    status, hdrs, body = Client(srv.port).get(path)
    assert status == 401
    if path.startswith("/api/"):
        assert json.loads(body) == {"error": "sign in or send a bearer token"}
        assert hdrs["www-authenticate"].startswith("Bearer")
    else:
        assert b'action="/login"' in body and b"P7 classroom" not in body
    # a wrong token or a forged cookie is no better
    for h in (bearer("x" * 40), {"Cookie": "ga_session=" + "A" * 43}):
        assert Client(srv.port).get(path, headers=h)[0] == 401


@pytest.mark.parametrize("path", POSTS)
def test_no_action_without_a_session(srv: ConsoleServer, path: str) -> None:
    c = Client(srv.port)
    token = c.csrf()  # a visitor's CSRF token is not a sign-in
    status, _, _ = c.post_form(path, {"csrf": token, "id": "x", "f_port": "1", "payload": "01"})
    assert status == 401


def test_token_reads_the_api_as_a_viewer(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    assert c.json("/api/devices", headers=bearer())[0]["dev_eui"] == EUI1
    status, _, _ = c.request("POST", "/api/outbox/retry", headers=bearer())
    assert status == 403  # token_role defaults to viewer


def test_sign_in_sets_a_fresh_strict_cookie(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    token = c.csrf()
    before = c.cookie
    status, _, body = c.post_form(
        "/login", {"csrf": token, "username": "olga", "password": "nope", "next": "/"}
    )
    assert status == 401 and b"Wrong user or password" in body
    status, hdrs, _ = c.post_form(
        "/login",
        {"csrf": token, "username": "olga", "password": PASSWORDS["olga"], "next": "//evil.com"},
    )
    assert status == 303 and hdrs["location"] == "/"  # never an open redirect
    cookie = hdrs["set-cookie"]
    assert "HttpOnly" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie
    assert c.cookie != before  # a new session id on sign-in: no fixation
    assert c.get("/")[0] == 200
    # signing out ends the session server-side
    old = c.cookie
    assert c.post_form("/logout", {"csrf": c.csrf("/")})[0] == 303
    assert Client(srv.port).get("/", headers={"Cookie": old or ""})[0] == 401


def test_login_needs_its_csrf_token(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    c.csrf()
    status, _, _ = c.post_form("/login", {"username": "olga", "password": PASSWORDS["olga"]})
    assert status == 403


def test_csrf_refused_on_every_state_change(srv: ConsoleServer) -> None:
    alert_id = srv.command("alerts", limit=10)[0]["id"]
    c = Client(srv.port)
    c.login("olga")
    token = c.csrf("/alerts")
    for fields, headers in (
        ({"id": alert_id}, {}),
        ({"id": alert_id, "csrf": "forged"}, {}),
        ({"id": alert_id, "csrf": "\u00e9" * 43}, {}),  # not ASCII: refused, not a 500
        ({"id": alert_id, "csrf": token}, {"Origin": "http://evil.example"}),
    ):
        assert c.post_form("/alerts/ack", fields, headers)[0] == 403
    for path in ("/api/outbox/retry", f"/api/alerts/{alert_id}/ack"):
        assert c.request("POST", path)[0] == 403  # a cookie alone is not enough
        assert c.request("POST", path, headers={"X-CSRF-Token": "forged"})[0] == 403
    assert srv.command("alerts", limit=10)[0]["acked"] is False
    assert c.request("POST", "/api/outbox/retry", headers={"X-CSRF-Token": token})[0] == 200


def test_viewer_cannot_act(srv: ConsoleServer) -> None:
    alert_id = srv.command("alerts", limit=10)[0]["id"]
    c = Client(srv.port)
    c.login("vic")
    _, _, page = c.get("/alerts")
    assert b"Acknowledge</button>" not in page
    token = c.csrf("/alerts")
    assert c.post_form("/alerts/ack", {"id": alert_id, "csrf": token})[0] == 403
    assert c.post_form("/outbox/retry", {"csrf": token})[0] == 403
    h = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    body = json.dumps({"f_port": 1, "payload": "01"})
    assert c.request("POST", f"/api/devices/{EUI1}/downlink", body, h)[0] == 403
    assert srv.command("alerts", limit=10)[0]["acked"] is False


def _crawl(c: Client, srv: ConsoleServer) -> dict[str, bytes]:
    out = {}
    for path in (
        [p for p in PAGES if p != "/live/events"]
        + API
        + [
            f"/devices/{EUI2}",
            f"/api/devices/{EUI2}",
            f"/devices/{EUI1}?range=30d",
            "/reports/co2.html?month=2026-01",
            "/reports/legionella.json?month=2026-01",
            "/devices?q=fife",
        ]
    ):
        status, _, body = c.get(path)
        assert status == 200, (path, status, body[:200])
        out[path] = body
    return out


def test_no_key_material_in_any_response(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    c.login("olga")
    bodies = _crawl(c, srv)
    forms = []
    for k in KEYS:
        raw = bytes.fromhex(k)
        forms += [k.encode(), k.upper().encode(), base64.b64encode(raw), raw]
    for path, body in bodies.items():
        for f in forms:
            assert f not in body, (path, f)
    for field in (b"nwk_s_key", b"app_s_key", b"app_key", b"password", b"scrypt$"):
        for path, body in bodies.items():
            if path != "/doctor":  # doctor names files (e.g. a key file's mode), never contents
                assert field not in body, (path, field)


def test_api_mirrors_the_cli_json(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    h = bearer()
    assert c.json("/api/devices", headers=h) == json.loads(json.dumps(srv.command("devices")))
    row = next(r for r in srv.command("devices") if r["dev_eui"] == EUI1)
    assert c.json(f"/api/devices/{EUI1}", headers=h) == json.loads(json.dumps(row))
    assert c.json("/api/alerts?limit=5&open=1", headers=h) == srv.command(
        "alerts", limit=5, open=True
    )
    api, cli = c.json("/api/status", headers=h), srv.command("status")
    assert set(api) == set(cli) and api["devices"] == cli["devices"]
    assert api["outbox"]["depth"] == cli["outbox"]["depth"]
    assert set(c.json("/api/outbox", headers=h)) == set(srv.command("outbox"))
    rep = c.json("/api/reports/co2?month=2026-01", headers=h)
    assert rep["kind"] == "co2"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/static/../settings.py", 404),
        ("/static/%2e%2e%2fsettings.py", 404),
        ("/static/..%2f..%2fusers.py", 404),
        ("/static/style.css%00.py", 404),
        (f"/devices/{EUI1}%2f..%2f..", 404),
        ("/devices/..%2f..%2fetc%2fpasswd", 404),
        ("/api/devices/zz", 404),
        ("/api/alerts?limit=-1", 400),
        ("/api/alerts?limit=99999999999", 400),
        ("/api/reports/co2?month=../../etc", 400),
        ("/api/reports/nope?month=2026-01", 404),
        ("/reports/co2.exe?month=2026-01", 404),
        ("/devices?page=abc&q=%3Cscript%3E", 200),
    ],
)
def test_hostile_paths_and_queries(srv: ConsoleServer, path: str, status: int) -> None:
    c = Client(srv.port)
    c.login("olga")
    got, _, body = c.get(path)
    assert got == status, (path, body[:200])
    assert b"<script>" not in body and b"def " not in body


def test_hostile_bodies_and_cookies(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    c.login("olga")
    token = c.csrf("/")
    h = {"X-CSRF-Token": token, "Content-Type": "application/json"}
    url = f"/api/devices/{EUI1}/downlink"
    assert c.request("POST", url, b"x" * (1 << 20), h)[0] == 413
    for bad in (b"{", b"[]", b"\xff\xfe", b'{"f_port": "1", "payload": "01"}',
                b'{"f_port": 1, "payload": "zz"}', b'{"f_port": 300, "payload": "01"}'):  # fmt: skip
        status, _, body = c.request("POST", url, bad, h)
        assert status == 400, (bad, body)
        assert "error" in json.loads(body)
    assert c.request("POST", url, b"{}", {**h, "Content-Type": "text/plain"})[0] == 400
    ok = c.request("POST", url, json.dumps({"f_port": 2, "payload": "0a0b"}), h)
    assert ok[0] == 200 and "queued" in json.loads(ok[2])
    for cookie in (
        "ga_session=" + "%" * 5000,
        'ga_session="\x01\x02"',
        "ga_session=;;;=",
        "x" * 8000,
    ):
        status, _, _ = Client(srv.port).get("/api/status", headers={"Cookie": cookie})
        assert status in (400, 401, 431), cookie[:20]
    assert c.get("/")[0] == 200  # the server is still serving


def test_security_headers(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    c.login("vic")
    _, h, body = c.get("/")
    assert "script-src 'self'" in h["content-security-policy"]
    assert h["x-frame-options"] == "DENY" and h["cache-control"] == "no-store"
    # nothing from outside the package: no CDN, no external fonts
    assert not re.search(rb'(src|href)="(https?:)?//', body)


def test_login_flood_is_rate_limited(tmp_path: Path) -> None:
    with console(tmp_path, web={"login_failures_per_min": 5}) as s:
        c = Client(s.port)
        token = c.csrf()
        statuses = []
        for i in range(8):
            st, h, _ = c.post_form(
                "/login", {"csrf": token, "username": "olga", "password": f"guess{i}"}
            )
            statuses.append(st)
        assert statuses == [401] * 5 + [429] * 3
        st, h, _ = c.post_form(
            "/login", {"csrf": token, "username": "olga", "password": PASSWORDS["olga"]}
        )
        assert st == 429 and int(h["retry-after"]) >= 1  # even the right password, for now


def test_open_console_checks_the_host_header(tmp_path: Path) -> None:
    with console(tmp_path, auth=False) as s:
        c = Client(s.port)
        assert c.get("/api/status")[0] == 200  # loopback without auth: open, like the CLI
        assert c.get("/", headers={"Host": "evil.example"})[0] == 421  # DNS rebinding
        assert c.request("POST", "/api/outbox/retry")[0] == 403  # CSRF still holds
