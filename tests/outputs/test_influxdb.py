"""The influxdb output against a real influxd 1.x (issue #20 must-show 1): readings, alerts and
events land with their measurement, tags, fields and timestamps and a query gives them back;
line-protocol escaping round-trips; auth and refusals; down, backoff, then delivered. The 2.x
request (path, query, token header) is checked against a local stand-in (influxd 1.6 has no
/api/v2/write)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway_agent.config.outputs import OutputConfig
from gateway_agent.metrics import Counters
from gateway_agent.model import Alert, Reading
from gateway_agent.outputs.influxdb import make_sink, row_line
from gateway_agent.outputs.worker import OutputDown, OutputWorker, SinkContext
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING, QueueRow, Store
from gateway_agent.store.thread import StoreThread
from gateway_agent.upstream.formats import alert_message, dumps, event_message, uplink_message
from hil.ports import free_port
from tests.outputs.conftest import DB
from tests.outputs.kit import Influxd

T0 = 1_790_000_000.123  # a reception time (s); InfluxDB keeps ms
EUI = "70b3d57ed1000001"
CTX = SinkContext("gw-test", Counters())


def cfg(url: str, **kw: Any) -> OutputConfig:
    base: dict[str, Any] = {"name": "influx", "type": "influxdb", "url": url, "database": DB}
    base.update(kw)
    return OutputConfig(**base)


def reading(
    fcnt: int, t: float, eui: str = EUI, measurements: dict[str, float] | None = None
) -> Reading:
    return Reading(
        id=f"{eui}-s1-{fcnt}",
        dev_eui=bytes.fromhex(eui),
        dev_addr=bytes.fromhex("27000001"),
        fcnt=fcnt,
        f_port=1,
        payload=b"\x01",
        time=t,
        measurements=measurements or {"temperature_c": 21.5 + fcnt, "battery_v": 3},
    )


def up_row(
    seq: int, r: Reading, name: str = "boiler room", tags: tuple[str, ...] = ("school",)
) -> QueueRow:
    body = dumps(uplink_message(r, "gw-test", name, tags))
    return QueueRow(seq, PRIO_READING, "up", r.dev_eui.hex(), r.id, body, r.time)


def alert_row(seq: int, a: Alert) -> QueueRow:
    return QueueRow(
        seq, PRIO_ALERT, "alert", a.dev_eui.hex(), a.id, dumps(alert_message(a)), a.time
    )


async def deliver(c: OutputConfig, rows: list[QueueRow]) -> Any:
    sink = make_sink(c, CTX)
    await sink.open()
    try:
        return await sink.deliver(rows)
    finally:
        await sink.close()


async def test_readings_land_with_measurement_tags_fields_and_time(influxd: Influxd) -> None:
    rows = [up_row(i + 1, reading(i, T0 + i * 0.25)) for i in range(5)]
    got = await deliver(cfg(influxd.url), rows)
    assert got.done == [1, 2, 3, 4, 5] and not got.refused
    pts = influxd.rows("SELECT * FROM readings ORDER BY time", DB)
    assert len(pts) == 5
    for i, p in enumerate(pts):
        assert p["time"] == round((T0 + i * 0.25) * 1000), "the reception time, in ms"
        assert p["dev_eui"] == EUI and p["name"] == "boiler room" and p["tags"] == "school"
        assert p["temperature_c"] == 21.5 + i and p["battery_v"] == 3.0
        assert p["fcnt"] == i and p["id"] == f"{EUI}-s1-{i}"
    # every measurement is a float field (a later 3.5 V must not be refused as a type change);
    # fcnt an integer field
    keys = influxd.rows('SHOW FIELD KEYS FROM "readings"', DB)
    types = {k["fieldKey"]: k["fieldType"] for k in keys}
    assert types == {
        "battery_v": "float",
        "temperature_c": "float",
        "fcnt": "integer",
        "id": "string",
    }
    tagkeys = {k["tagKey"] for k in influxd.rows('SHOW TAG KEYS FROM "readings"', DB)}
    assert tagkeys == {"dev_eui", "name", "tags"}, "no class: the up message does not carry it"


async def test_the_class_names_the_measurement_when_the_message_carries_it(
    influxd: Influxd,
) -> None:
    r = reading(7, T0)
    msg = uplink_message(r, "gw-test", "co2 hall", ("a", "b"))
    msg["deviceInfo"]["class"] = "co2"
    row = QueueRow(1, PRIO_READING, "up", EUI, r.id, dumps(msg), r.time)
    assert (await deliver(cfg(influxd.url), [row])).done == [1]
    (p,) = influxd.rows('SELECT * FROM "co2"', DB)
    assert p["class"] == "co2" and p["tags"] == "a,b" and p["fcnt"] == 7


async def test_alerts_and_events_land(influxd: Influxd) -> None:
    a = Alert("al-1", bytes.fromhex(EUI), "hot", "raised", "warning", "temperature_c", 61.5, T0,
              "temperature 61.5 above 60")  # fmt: skip
    ev = event_message("gw:event:config_reloaded:1", "config_reloaded", T0 + 1, {"devices": 4})
    rows = [
        alert_row(1, a),
        QueueRow(2, PRIO_EVENT, "event", None, ev["id"], dumps(ev), T0 + 1),
    ]
    assert (await deliver(cfg(influxd.url), rows)).done == [1, 2]
    (p,) = influxd.rows("SELECT * FROM alerts", DB)
    assert (p["dev_eui"], p["rule"], p["severity"], p["state"]) == (EUI, "hot", "warning", "raised")
    assert p["value"] == 61.5 and p["message"] == "temperature 61.5 above 60"
    assert p["measurement"] == "temperature_c" and p["time"] == round(T0 * 1000)
    (e,) = influxd.rows("SELECT * FROM events", DB)
    assert e["event"] == "config_reloaded" and json.loads(e["data"]) == {"devices": 4}


NASTY = [
    "with space",
    "comma,equals=both",
    'double "quotes"',
    "back\\slash \\, \\= \\ x",
    "ünïcödé ✓ 温度",
    "tab\tand line\nbreak",
    "trailing backslash\\",
]


async def test_escaping_round_trips_through_influxd(influxd: Influxd) -> None:
    """Tag values (device name, tags), field keys (measurement names) and string fields (alert
    message) with spaces, commas, equals, quotes, backslashes, unicode: written, queried back."""
    rows = []
    for i, text in enumerate(NASTY):
        eui = f"70b3d57ed10001{i:02x}"
        r = reading(i, T0 + i, eui=eui, measurements={f"odd {i},k=v": 1.0 + i})
        rows.append(up_row(2 * i + 1, r, name=text, tags=(text, "plain")))
        a = Alert(f"al-{i}", bytes.fromhex(eui), f"rule {text}", "raised", "info", None, None,
                  T0 + i, text)  # fmt: skip
        rows.append(alert_row(2 * i + 2, a))
    got = await deliver(cfg(influxd.url), rows)
    assert len(got.done) == len(rows) and not got.refused
    pts = {p["dev_eui"]: p for p in influxd.rows("SELECT * FROM readings", DB)}
    alerts = {p["dev_eui"]: p for p in influxd.rows("SELECT * FROM alerts", DB)}
    for i, text in enumerate(NASTY):
        eui = f"70b3d57ed10001{i:02x}"
        # a tag keeps everything but what line protocol cannot carry there: line breaks
        # (a space) and trailing backslashes (left out)
        as_tag = text.replace("\n", " ").rstrip("\\")
        assert pts[eui]["name"] == as_tag, (text, pts[eui]["name"])
        assert pts[eui]["tags"] == text.replace("\n", " ") + ",plain"
        assert pts[eui][f"odd {i},k=v"] == 1.0 + i, "field key escaped"
        assert alerts[eui]["message"] == text, "a string field keeps every character"
        assert alerts[eui]["rule"] == f"rule {as_tag}"
        assert "value" not in alerts[eui] or alerts[eui]["value"] is None


async def test_non_numbers_and_non_finite_values_are_left_out_not_refused(influxd: Influxd) -> None:
    r = reading(1, T0, measurements={"ok": 2.5, "nan": float("nan"), "inf": float("inf")})
    msg = uplink_message(r, "gw-test", "x", ())
    msg["measurements"]["text"] = "high"
    msg["measurements"]["flag"] = True
    row = QueueRow(1, PRIO_READING, "up", EUI, r.id, dumps(msg), T0)
    assert "nan" not in row_line(row) and "inf" not in row_line(row).split(" ")[1]
    assert (await deliver(cfg(influxd.url), [row])).done == [1]
    (p,) = influxd.rows("SELECT * FROM readings", DB)
    assert p["ok"] == 2.5 and p["flag"] == 1.0 and "text" not in p


async def test_a_refused_point_costs_only_itself(influxd: Influxd) -> None:
    """A field whose type the database already holds differently (a string) refuses that
    reading (400, partial write): it is dropped with the server's reason, the batch's other
    readings land."""
    # (types are per shard: the string is written in the readings' week)
    assert influxd.write(f'readings,dev_eui=x temperature_c="warm" {round(T0 * 1000)}', DB) == 204
    good = [up_row(i, reading(i, T0 + i, measurements={"humidity_pct": 40.0 + i})) for i in (1, 3)]
    bad = up_row(2, reading(2, T0 + 2, measurements={"temperature_c": 20.0}))
    got = await deliver(cfg(influxd.url), [good[0], bad, good[1]])
    assert got.done == [1, 3] and got.refused == [2]
    assert (
        got.refused_reason.startswith("http 400: ") and "field type conflict" in got.refused_reason
    )
    assert len(got.refused_reason) < 200
    ids = {p["id"] for p in influxd.rows('SELECT "id" FROM readings', DB)}
    assert {f"{EUI}-s1-1", f"{EUI}-s1-3"} <= ids and f"{EUI}-s1-2" not in ids


async def test_basic_auth_1x_wrong_password_keeps_rows_right_one_delivers(
    influxd_auth: Influxd, tmp_path: Path
) -> None:
    pw = tmp_path / "influx.password"
    pw.write_text("wrong-password-xyz\n")
    pw.chmod(0o600)
    c = cfg(influxd_auth.url, username="admin", password_file=pw)
    rows = [up_row(1, reading(1, T0))]
    with pytest.raises(OutputDown) as e:
        await deliver(c, rows)  # 401: the output is down (misconfigured), the rows wait
    assert e.value.reason == "http 401: authorization failed"
    assert "wrong-password" not in e.value.reason
    with pytest.raises(OutputDown):  # no credentials at all
        await deliver(cfg(influxd_auth.url), rows)
    pw.write_text("s3cret-admin\n")
    assert (await deliver(c, rows)).done == [1]
    assert influxd_auth.rows("SELECT * FROM readings", DB)[0]["fcnt"] == 1


async def test_unknown_database_is_down_not_refused(influxd: Influxd) -> None:
    with pytest.raises(OutputDown) as e:
        await deliver(cfg(influxd.url, database="nope"), [up_row(1, reading(1, T0))])
    assert e.value.reason.startswith("http 404") and "database not found" in e.value.reason


async def test_down_then_back_nothing_lost_in_order(tmp_path: Path) -> None:
    """The real worker and store: influxd is not there (connection refused, backoff), then
    starts on that port: every row lands, in order, and the lane empties."""
    server = Influxd(tmp_path / "influxd")
    st = StoreThread()
    store = await st.call(Store, tmp_path / "a.db")
    counters = Counters()
    sink = make_sink(cfg(server.url, batch_max=7), CTX)
    w = OutputWorker("influx", sink, store, st.call, counters, batch_max=7, backoff=(0.05, 0.2))
    rs = [reading(i, T0 + i * 0.01) for i in range(40)]
    await st.call(
        store.queue_add,
        [("influx", PRIO_READING, "up", EUI, r.id, dumps(uplink_message(r, "g", "n", ())), r.time)
         for r in rs],
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        for _ in range(200):
            if counters.get("output_errors", output="influx") >= 2:
                break
            await asyncio.sleep(0.02)
        assert w.state == "down" and "cannot connect" in (w.last_error or "")
        assert (await st.call(store.queue_stats))["influx"]["depth"] == 40
        await asyncio.to_thread(server.start)
        await asyncio.to_thread(server.create_db, DB)
        for _ in range(500):
            if not (await st.call(store.queue_stats)).get("influx", {}).get("depth"):
                break
            await asyncio.sleep(0.02)
        assert w.state == "up" and w.delivered == 40
        pts = await asyncio.to_thread(server.rows, 'SELECT "fcnt" FROM readings ORDER BY time', DB)
        assert [p["fcnt"] for p in pts] == list(range(40))
    finally:
        stop.set()
        await task
        await st.call(store.close)
        st.close()
        server.stop()


async def test_2x_write_path_query_and_token_header(tmp_path: Path) -> None:
    seen: list[tuple[str, dict[str, str], str | None, str]] = []

    async def write(req: web.Request) -> web.Response:
        seen.append((req.path, dict(req.query), req.headers.get("Authorization"), await req.text()))
        if len(seen) == 1:
            return web.json_response({"code": "unauthorized", "message": "unauthorized access"},
                                     status=401)  # fmt: skip
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/api/v2/write", write)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    token = tmp_path / "influx.token"
    token.write_text("tok-abc123==\n")
    token.chmod(0o600)
    c = OutputConfig(name="i2", type="influxdb", url=f"http://127.0.0.1:{port}/", org="council",
                     bucket="sensors", token_file=token)  # fmt: skip
    try:
        with pytest.raises(OutputDown) as e:
            await deliver(c, [up_row(1, reading(1, T0))])
        assert e.value.reason == "http 401: unauthorized access" and "tok-abc" not in str(e.value)
        assert (await deliver(c, [up_row(1, reading(1, T0))])).done == [1]
    finally:
        await runner.cleanup()
    path, query, auth, body = seen[-1]
    assert path == "/api/v2/write"
    assert query == {"org": "council", "bucket": "sensors", "precision": "ms"}
    assert auth == "Token tok-abc123=="
    assert body.startswith(f"readings,dev_eui={EUI},name=boiler\\ room,tags=school ")
    assert body.endswith(f" {round(T0 * 1000)}")


async def test_a_damaged_body_is_refused_alone(influxd: Influxd) -> None:
    bad = QueueRow(1, PRIO_READING, "up", EUI, "x", "{not json", T0)
    good = up_row(2, reading(2, T0 + 1))
    got = await deliver(cfg(influxd.url), [bad, good])
    assert got.refused == [1] and got.done == [2]
    assert got.refused_reason == "unwritable: JSONDecodeError"
    assert [p["fcnt"] for p in influxd.rows("SELECT * FROM readings", DB)] == [2]
