"""The console's downlink by object: the device page offers an object field when the device's codec
has `encodeDownlink` (operators only, CSRF as every form), the codec's bytes and fPort are queued
and shown, its errors come back as a 400 naming them; the JSON API takes `object` too."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.agentproc import REPO
from tests.web.kit import EUI1, Client, ConsoleServer, console

CODEC = REPO / "tests/fixtures/imports/ttnrepo/vendor/fife-sensors/room-co2.js"
EUI = "70b3d57ed0000401"
DEV = {"dev_eui": EUI, "name": "Hall", "class": "co2", "codec": f"js:{CODEC}",
       "dev_addr": "260c0401", "nwk_s_key": "22" * 16, "app_s_key": "33" * 16}  # fmt: skip


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    with console(tmp_path_factory.mktemp("web")) as s:
        assert s.command("devices_put", devices=[DEV])["upserted"] == 1
        yield s


def pending(srv: ConsoleServer) -> list[tuple[str, int, str]]:
    rows = srv.store_call(srv.host.store.pending_downlinks)
    return [(r["dev_eui"], r["f_port"], bytes(r["payload"]).hex()) for r in rows]


def test_object_form_queues_the_codecs_bytes(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    c.login("olga")
    status, _, body = c.get(f"/devices/{EUI}")
    assert status == 200 and b"Queue a downlink by object" in body and b'name="object"' in body
    # cayenne-lpp cannot encode: no object field there, the hex form stays
    _, _, other = c.get(f"/devices/{EUI1}")
    assert b'name="object"' not in other and b'name="payload"' in other
    token = c.csrf(f"/devices/{EUI}")
    before = len(pending(srv))
    status, h, body = c.post_form(
        f"/devices/{EUI}/downlink", {"csrf": token, "object": '{"interval": 600}', "f_port": ""}
    )
    assert status == 303, body
    assert re.fullmatch(rf"/devices/{EUI}\?queued=\d+&fport=10&bytes=010258", h["location"])
    _, _, page = c.get(h["location"])
    assert re.search(rb"Queued downlink \d+: fPort 10, <code>010258</code>", page)
    assert pending(srv)[before:] == [(EUI, 10, "010258")]

    for obj, text in (
        ('{"interval": 5}', "interval must be a whole number of seconds, 60..65535"),
        ("{}", "nothing to send"),
        ('{"interval":', "object: not JSON"),
        ("[600]", "object: expected a JSON object, got list"),
        ("x" * 5000, "object: longer than 4000 characters"),
    ):
        status, _, body = c.post_form(f"/devices/{EUI}/downlink", {"csrf": token, "object": obj})
        assert status == 400 and text.encode() in body, (obj, status, body[:300])
    status, _, body = c.post_form(
        f"/devices/{EUI1}/downlink", {"csrf": token, "object": '{"interval": 600}'}
    )
    assert status == 400 and b"a built-in codec has no downlink encoder" in body
    # no CSRF token: refused like every form
    assert c.post_form(f"/devices/{EUI}/downlink", {"object": '{"interval": 600}'})[0] == 403
    assert pending(srv)[before:] == [(EUI, 10, "010258")], "a refused object was queued"


def test_viewers_get_no_object_field_and_cannot_post(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    c.login("vic")
    _, _, body = c.get(f"/devices/{EUI}")
    assert b'name="object"' not in body
    token = c.csrf(f"/devices/{EUI}")
    status, _, _ = c.post_form(
        f"/devices/{EUI}/downlink", {"csrf": token, "object": '{"interval": 600}'}
    )
    assert status == 403


def test_api_object(srv: ConsoleServer) -> None:
    c = Client(srv.port)
    c.login("olga")
    h = {"X-CSRF-Token": c.csrf("/"), "Content-Type": "application/json"}
    url = f"/api/devices/{EUI}/downlink"
    status, _, body = c.request("POST", url, json.dumps({"object": {"led": True}}), h)
    assert status == 200, body
    ans = json.loads(body)
    assert (ans["f_port"], ans["payload"]) == (10, "0201") and ans["queued"] >= 1
    for bad, text in (
        ({"object": [1]}, "object: expected a JSON object"),
        ({"object": {"interval": 5}}, "interval must be a whole number"),
        ({"object": {"led": True}, "f_port": "10"}, "f_port: expected an integer"),
    ):
        status, _, body = c.request("POST", url, json.dumps(bad), h)
        assert status == 400 and text in json.loads(body)["error"], (bad, body)
