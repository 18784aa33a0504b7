"""The `mqtt` output against a real mosquitto that checks username, password and topic (ACL):
today's topics and bodies (layout agent), ChirpStack v4's integration events (layout chirpstack,
parsed back with the chirpstack-api package's classes), a broker that is down then back, and the
real daemon sending GWMP uplinks through it."""

from __future__ import annotations

import json
from pathlib import Path

from chirpstack_api import integration
from google.protobuf import json_format

from gateway_agent.outputs.mqtt import make_sink
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING
from tests.durability_kit import fleet, frame, make_agent, send_all, wait_accepted
from tests.outputs.mqtt_kit import (
    Lane,
    Subscriber,
    alert_body,
    checking_broker,
    output,
    reading_body,
)

EUI = "70b3d57ed0000001"


def _secret(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text + "\n")
    p.chmod(0o600)
    return p


async def test_agent_layout_topics_bodies_alerts_first_and_a_refusing_broker(
    tmp_path: Path,
) -> None:
    broker = checking_broker(tmp_path / "b", {"ga": "pw-1"}, {"ga": ["ga/test-gw/#"]})
    sub = Subscriber(broker.port)
    lane = Lane(tmp_path, "plain")
    try:
        cfg = output(
            "plain",
            "mqtt",
            broker.port,
            mqtt={
                "topic_prefix": "ga",
                "username": "ga",
                "password_file": _secret(tmp_path, "pw", "pw-1"),
            },
        )
        await lane.start(make_sink(cfg, lane.ctx()))
        ups = [reading_body(EUI, f, {"temperature_c": 20.0 + f}) for f in range(5)]
        alert = alert_body(EUI, "hot", "raised")
        event = json.dumps({"id": "e1", "event": "config_reloaded", "time": "x"})
        await lane.add(
            [(PRIO_READING, "up", EUI, f"r{f}", b, 1.0 + f) for f, b in enumerate(ups)]
            + [(PRIO_ALERT, "alert", EUI, "a1", alert, 9.0)]
            + [(PRIO_EVENT, "event", None, "e1", event, 9.5)]
        )
        await lane.until_empty()
        assert sub.wait(lambda: len(sub.on(lambda t: t.startswith("ga/"))) == 7)
        got = sub.on(lambda t: t.startswith("ga/"))
        assert [t for t, _, _ in got] == [
            f"ga/test-gw/devices/{EUI}/alert",
            "ga/test-gw/events",
        ] + [f"ga/test-gw/devices/{EUI}/up"] * 5, "alerts, then events, then readings in FCnt order"
        assert [p.decode() for _, p, _ in got] == [alert, event, *ups], "bodies exactly today's"
        assert lane.worker is not None and lane.worker.status()["delivered"] == 7
    finally:
        await lane.close()
        sub.close()
        broker.stop()

    # The wrong password: the broker refuses, the output is down, the rows wait.
    broker = checking_broker(tmp_path / "b2", {"ga": "pw-1"}, {"ga": ["ga/test-gw/#"]})
    lane = Lane(tmp_path / "wrong", "plain")
    (tmp_path / "wrong").mkdir()
    try:
        cfg = output(
            "plain",
            "mqtt",
            broker.port,
            mqtt={
                "topic_prefix": "ga",
                "username": "ga",
                "password_file": _secret(tmp_path, "bad", "not-it"),
            },
        )
        await lane.start(make_sink(cfg, lane.ctx()))
        await lane.add([(PRIO_READING, "up", EUI, "r1", ups[1], 1.0)])
        import asyncio

        for _ in range(100):
            if lane.worker and lane.worker.state == "down":
                break
            await asyncio.sleep(0.05)
        assert lane.worker is not None and lane.worker.state == "down"
        assert "not authori" in (lane.worker.last_error or "").lower()
        assert "not-it" not in (lane.worker.last_error or ""), "no secret in the reason"
        assert await lane.depth() == 1, "nothing lost"
    finally:
        await lane.close()
        broker.stop()


async def test_chirpstack_layout_parses_with_the_chirpstack_api_classes(tmp_path: Path) -> None:
    app = "8c3b2a5e-3f5d-4b7a-9d6e-1f2a3b4c5d6e"
    broker = checking_broker(tmp_path / "b", {"cs": "pw-2"}, {"cs": [f"application/{app}/#"]})
    sub = Subscriber(broker.port)
    lane = Lane(tmp_path, "cs")
    try:
        cfg = output(
            "cs",
            "mqtt",
            broker.port,
            layout="chirpstack",
            application_id=app,
            application_name="Fife schools",
            mqtt={"username": "cs", "password_file": _secret(tmp_path, "pw", "pw-2")},
        )
        await lane.start(make_sink(cfg, lane.ctx()))
        sent = {f: {"temperature_c": 20.5 + f, "humidity_pct": 40.0 + f} for f in range(1, 4)}
        joined = json.dumps(
            {
                "id": "gw:event:device_joined:1",
                "event": "device_joined",
                "time": "2025-12-06T10:00:00.000000Z",
                "devEui": EUI,
                "devAddr": "26011bda",
            }
        )
        await lane.add(
            [
                (PRIO_READING, "up", EUI, f"r{f}", reading_body(EUI, f, m, "Boiler room"), 1.0)
                for f, m in sent.items()
            ]
            + [(PRIO_ALERT, "alert", EUI, "a1", alert_body(EUI, "hot", "raised"), 2.0)]
            + [(PRIO_EVENT, "event", None, "e1", joined, 3.0)]
            + [(PRIO_EVENT, "event", None, "e2", '{"id":"e2","event":"config_reloaded"}', 3.0)]
            + [(PRIO_READING, "up", EUI, "bad", "{not json", 4.0)]
        )
        await lane.until_empty()
        base = f"application/{app}/device/{EUI}/event/"
        assert sub.wait(lambda: len(sub.on(lambda t: t.startswith(base + "up"))) == 3)
        ups = [
            json_format.Parse(p, integration.UplinkEvent())
            for _, p, _ in sub.on(lambda t: t == base + "up")
        ]
        for f, ev in zip(sent, ups, strict=True):
            assert ev.f_cnt == f and ev.f_port == 1 and ev.dev_addr == "26011bda"
            assert ev.data == bytes([1, 0x67, 0, 215])
            assert ev.device_info.dev_eui == EUI
            assert ev.device_info.application_id == app
            assert ev.device_info.application_name == "Fife schools"
            assert ev.device_info.device_name == "Boiler room"
            assert dict(ev.device_info.tags) == {"site": "fife", "boiler": ""}
            assert ev.object["temperature_c"] == sent[f]["temperature_c"]
            assert ev.object["humidity_pct"] == sent[f]["humidity_pct"]
            assert ev.object["temperature_1"] == 21.5, "the codec's own object too"
            assert ev.time.ToSeconds() == int(1_765_000_000.5 + f)
            assert ev.rx_info[0].gateway_id == "b827ebfffe6c1a2b"
            assert ev.rx_info[0].rssi == -71 and ev.rx_info[0].snr == 9.5
            assert ev.tx_info.frequency == 868_100_000
            assert ev.tx_info.modulation.lora.spreading_factor == 7
            assert ev.tx_info.modulation.lora.bandwidth == 125_000
            assert len(ev.deduplication_id) == 36
        raw = json.loads(sub.on(lambda t: t == base + "up")[0][1])
        assert {
            "deduplicationId",
            "time",
            "deviceInfo",
            "devAddr",
            "fCnt",
            "fPort",
            "data",
            "object",
            "rxInfo",
            "txInfo",
        } <= set(raw), "camelCase protobuf JSON mapping"
        assert raw["deviceInfo"]["devEui"] == EUI
        (log,) = [
            json_format.Parse(p, integration.LogEvent())
            for _, p, _ in sub.on(lambda t: t == base + "log")
        ]
        assert log.level == integration.LogLevel.WARNING
        assert log.context["rule"] == "hot" and log.context["state"] == "raised"
        assert log.description == "hot raised"
        (join,) = [
            json_format.Parse(p, integration.JoinEvent())
            for _, p, _ in sub.on(lambda t: t == base + "join")
        ]
        assert join.dev_addr == "26011bda"
        assert not sub.on(lambda t: "config_reloaded" in t), "no ChirpStack event for it"
        stats = await lane.st.call(lane.store.queue_stats)  # type: ignore[union-attr]
        assert stats["cs"]["dropped"] == {"unsent_readings": 1}, "the unreadable row, counted"
    finally:
        await lane.close()
        sub.close()
        broker.stop()


async def test_broker_down_then_back_loses_nothing(tmp_path: Path) -> None:
    broker = checking_broker(tmp_path / "b", {"ga": "pw"}, {"ga": ["ga/#"]})
    lane = Lane(tmp_path, "plain")
    try:
        cfg = output(
            "plain",
            "mqtt",
            broker.port,
            mqtt={
                "topic_prefix": "ga",
                "username": "ga",
                "password_file": _secret(tmp_path, "pw", "pw"),
            },
        )
        await lane.start(make_sink(cfg, lane.ctx()))
        broker.stop()
        await lane.add(
            [(PRIO_READING, "up", EUI, f"r{f}", reading_body(EUI, f, {}), 1.0) for f in range(20)]
        )
        import asyncio

        await asyncio.sleep(1.0)
        assert await lane.depth() == 20
        assert lane.worker is not None and lane.worker.state == "down"
        broker.start()
        sub = Subscriber(broker.port)
        try:
            lane.worker.retry_now()
            await lane.until_empty()
            assert sub.wait(lambda: len(sub.on(lambda t: t.endswith("/up"))) == 20)
            fcnts = [json.loads(p)["fCnt"] for _, p, _ in sub.on(lambda t: t.endswith("/up"))]
            assert fcnts == list(range(20))
        finally:
            sub.close()
    finally:
        await lane.close()
        broker.stop()


def test_daemon_end_to_end_chirpstack_layout(tmp_path: Path) -> None:
    app = "app-e2e"
    broker = checking_broker(tmp_path / "b", {"gw": "pw-e2e"}, {"gw": [f"application/{app}/#"]})
    sub = Subscriber(broker.port)
    devs = fleet(2)
    pw = _secret(tmp_path, "pw", "pw-e2e")
    agent = make_agent(
        tmp_path / "a",
        None,
        devs,
        outputs=[
            {
                "name": "cs",
                "type": "mqtt",
                "layout": "chirpstack",
                "application_id": app,
                "host": "127.0.0.1",
                "port": broker.port,
                "username": "gw",
                "password_file": str(pw),
                "backoff_initial_s": 0.1,
                "backoff_max_s": 0.5,
            }
        ],
    )
    try:
        agent.start()
        send_all(agent, [frame(d, f, 20.0 + f) for f in range(5) for d in devs])
        assert wait_accepted(agent, 10) == 10
        topic = f"application/{app}/device/"
        assert sub.wait(lambda: len(sub.on(lambda t: t.startswith(topic))) == 10), agent.tail()
        for d in devs:
            evs = [
                json_format.Parse(p, integration.UplinkEvent())
                for t, p, _ in sub.on(lambda t, e=d["eui"]: t == f"{topic}{e}/event/up")
            ]
            assert [e.f_cnt for e in evs] == list(range(5)), "per-device FCnt order"
            assert [e.object["temperature_c"] for e in evs] == [20.0 + f for f in range(5)]
        # the PUBACKs may still be on their way to the lane's delete
        assert sub.wait(lambda: agent.ask("outbox")["outputs"]["cs"]["delivered"] == 10)
        st = agent.ask("outbox")["outputs"]["cs"]
        assert st["state"] == "up" and st["depth"] == 0
    finally:
        agent.stop()
        sub.close()
        broker.stop()
