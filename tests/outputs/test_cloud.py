"""`azure-iothub` and `aws-iot`: these cannot be reached from here, so their connection details,
token algorithm and topics are tested against a local mosquitto that checks username, password
(or client certificate) and topic (ACL), and the SAS token against Microsoft's own known-answer
values."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from cryptography.hazmat.primitives import serialization

from gateway_agent.errors import ConfigError
from gateway_agent.outputs import aws
from gateway_agent.outputs.azure import AzureSink, property_bag, sas_token
from gateway_agent.store import PRIO_ALERT, PRIO_EVENT, PRIO_READING
from tests.durability_kit import fleet, frame, make_agent, send_all, wait_accepted
from tests.outputs.mqtt_kit import (
    ADMIN,
    Lane,
    Subscriber,
    alert_body,
    checking_broker,
    output,
    reading_body,
)
from tests.upstream.test_tls import issue, make_ca, write_pem

EUI = "70b3d57ed0000001"
HUB, DEVICE = "myhub", "dev-1"
USERNAME = f"{HUB}.azure-devices.net/{DEVICE}/?api-version=2021-04-12"
KEY = base64.b64encode(bytes(range(32))).decode()  # a device's primary key is 32 bytes, base64
T0 = 1_765_000_000.0  # the sink's clock in these tests


def test_sas_token_matches_microsofts_known_answer() -> None:
    # Microsoft's Azure IoT CLI extension (github.com/Azure/azure-iot-cli-extension, unit tests,
    # class TestSasTokenAuth) pins this device-scoped token (no policy name). Microsoft's
    # "Control access to IoT Hub with shared access signatures" page
    # (learn.microsoft.com/azure/iot-hub/iot-hub-dev-guide-sas) documents the algorithm but
    # elides its example key ("..."), so its printed signature cannot be recomputed.
    token = sas_token(
        "iot-hub-for-test.azure-devices.net/devices/iot-device-for-test",
        "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw=",
        1471940363,
    )
    assert token == (
        "SharedAccessSignature sr=iot-hub-for-test.azure-devices.net%2Fdevices%2F"
        "iot-device-for-test&sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D&se=1471940363"
    )


def _expected_token(expiry: int) -> str:
    """An independent computation of the documented algorithm (not the sink's code)."""
    sr = quote(f"{HUB}.azure-devices.net/devices/{DEVICE}", safe="")
    mac = hmac.new(base64.b64decode(KEY), (sr + "\n" + str(expiry)).encode(), hashlib.sha256)
    return (
        f"SharedAccessSignature sr={sr}&sig={quote(base64.b64encode(mac.digest()), safe='')}"
        f"&se={expiry}"
    )


def _set_password(pw_file: Path, user: str, password: str) -> None:
    subprocess.run(["mosquitto_passwd", "-b", str(pw_file), user, password], check=True)


def _connects(broker: Any, client_id: str) -> int:
    return broker.log_path.read_text(errors="replace").count(f" as {client_id} ")


async def _until(cond: Any, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if cond():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_azure_sas_username_topic_properties_and_renewal(tmp_path: Path) -> None:
    ttl = 3600
    broker = checking_broker(
        tmp_path / "b",
        {USERNAME: _expected_token(int(T0) + ttl)},
        {USERNAME: [f"devices/{DEVICE}/messages/events/#"]},
    )
    sub = Subscriber(broker.port)
    lane = Lane(tmp_path, "azure")
    now = [T0]
    key_file = tmp_path / "device.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    try:
        cfg = output(
            "azure",
            "azure-iothub",
            broker.port,
            hub=HUB,
            device_id=DEVICE,
            device_key_file=key_file,
            sas_ttl_s=ttl,
        )
        sink = AzureSink(cfg, lane.ctx(), clock=lambda: now[0])
        await lane.start(sink)
        up, alert = reading_body(EUI, 1, {"co2_ppm": 700}), alert_body(EUI, "co2_high", "raised")
        await lane.add(
            [(PRIO_READING, "up", EUI, "r1", up, 1.0), (PRIO_ALERT, "alert", EUI, "a1", alert, 2.0)]
        )
        await lane.until_empty()
        prefix = f"devices/{DEVICE}/messages/events/"
        assert sub.wait(lambda: len(sub.on(lambda t: t.startswith(prefix))) == 2)
        got = sub.on(lambda t: t.startswith(prefix))
        props = [dict(parse_qsl(t[len(prefix) :], keep_blank_values=True)) for t, _, _ in got]
        assert props[0] == {
            "$.ct": "application/json",
            "$.ce": "utf-8",
            "$.mid": "a1",
            "kind": "alert",
            "devEui": EUI,
            "gatewayId": "test-gw",
        }
        assert props[1]["kind"] == "up" and props[1]["$.mid"] == "r1"
        assert "$.ct=application%2Fjson&$.ce=utf-8" in got[0][0], "values url-encoded"
        assert [p for _, p, _ in got] == [alert.encode(), up.encode()], "today's bodies"
        assert _connects(broker, DEVICE) == 1, "client id = device id"

        # Before 80 % of the lifetime: the same connection.
        now[0] = T0 + 0.79 * ttl
        await lane.add([(PRIO_READING, "up", EUI, "r2", reading_body(EUI, 2, {}), 3.0)])
        await lane.until_empty()
        assert _connects(broker, DEVICE) == 1
        # At 80 %: a new token; the broker now knows only the new one (SIGHUP reloads).
        now[0] = T0 + 0.8 * ttl
        _set_password(tmp_path / "b" / "passwd", USERNAME, _expected_token(int(now[0]) + ttl))
        assert broker.proc is not None
        os.kill(broker.proc.pid, signal.SIGHUP)
        await asyncio.sleep(0.3)
        await lane.add([(PRIO_READING, "up", EUI, "r3", reading_body(EUI, 3, {}), 4.0)])
        await lane.until_empty()
        assert _connects(broker, DEVICE) == 2, "reconnected with the renewed token"
        assert sub.wait(lambda: len(sub.on(lambda t: t.startswith(prefix))) == 4)
        assert lane.worker is not None and lane.worker.state == "up"
        assert KEY not in broker.tail_log(200) and "SharedAccessSignature" not in str(
            lane.worker.status()
        )
    finally:
        await lane.close()
        sub.close()
        broker.stop()


async def test_azure_wrong_key_is_refused_and_rows_wait(tmp_path: Path) -> None:
    broker = checking_broker(
        tmp_path / "b",
        {USERNAME: _expected_token(int(T0) + 3600)},
        {USERNAME: [f"devices/{DEVICE}/messages/events/#"]},
    )
    lane = Lane(tmp_path, "azure")
    key_file = tmp_path / "device.key"
    key_file.write_text(base64.b64encode(b"x" * 32).decode())
    key_file.chmod(0o600)
    try:
        cfg = output(
            "azure", "azure-iothub", broker.port, hub=HUB, device_id=DEVICE,
            device_key_file=key_file,
        )  # fmt: skip
        await lane.start(AzureSink(cfg, lane.ctx(), clock=lambda: T0))
        await lane.add([(PRIO_READING, "up", EUI, "r1", reading_body(EUI, 1, {}), 1.0)])
        await _until(lambda: lane.worker is not None and lane.worker.state == "down")
        assert "not authori" in (lane.worker.last_error or "").lower()  # type: ignore[union-attr]
        assert await lane.depth() == 1
    finally:
        await lane.close()
        broker.stop()


def test_azure_property_bag_encodes_values_only() -> None:
    assert property_bag({"$.ct": "application/json", "name": "a b&c=d/é"}) == (
        "$.ct=application%2Fjson&name=a%20b%26c%3Dd%2F%C3%A9"
    )


def _pki(d: Path, clients: dict[str, str]) -> Path:
    """A CA, a server cert for localhost and a client cert (CN) per name; plus a rogue one."""
    d.mkdir(parents=True)
    ca, rogue_ca = make_ca("test-ca"), make_ca("rogue-ca")
    (d / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    write_pem(d, "server", *issue(ca, "localhost", True))
    for name, cn in clients.items():
        write_pem(d, name, *issue(ca, cn, False))
    write_pem(d, "rogue", *issue(rogue_ca, "thing-1", False))
    return d


def _tls_broker(tmp: Path, pki: Path, acl: dict[str, list[str]]) -> Any:
    return checking_broker(
        tmp,
        {},
        acl,
        extra="\n".join(
            [
                f"cafile {pki / 'ca.crt'}",
                f"certfile {pki / 'server.crt'}",
                f"keyfile {pki / 'server.key'}",
                "require_certificate true",
                "use_identity_as_username true",
            ]
        ),
    )


def _tls_sub(port: int, pki: Path) -> Subscriber:
    return Subscriber(
        port,
        auth=False,
        ca_certs=str(pki / "ca.crt"),
        certfile=str(pki / "admin.crt"),
        keyfile=str(pki / "admin.key"),
    )


def test_aws_topic_template_is_checked_at_make_sink(tmp_path: Path) -> None:
    for bad, says in (
        ("councils/{gateway}/{dev_eui}", "unknown placeholder {gateway}"),
        ("councils/{gateway_id}/#", "wildcards"),
        ("councils/{dev_eui", "not a valid template"),
    ):
        cfg = output("aws1", "aws-iot", 8883, topic_template=bad)
        with pytest.raises(ConfigError) as e:
            aws.make_sink(cfg, Lane(tmp_path, "x").ctx())
        assert says in str(e.value) and "aws1" in str(e.value)
    cfg = output("aws1", "aws-iot", 8883, topic_template="a/{kind}")
    with pytest.raises(ConfigError, match="cert_file"):
        aws.make_sink(cfg, Lane(tmp_path, "x").ctx())


async def test_aws_rogue_client_certificate_is_refused_and_rows_wait(tmp_path: Path) -> None:
    pki = _pki(tmp_path / "pki", {"admin": ADMIN[0]})
    broker = _tls_broker(tmp_path / "b", pki, {"thing-1": ["councils/#"]})
    lane = Lane(tmp_path, "aws")
    try:
        cfg = output(
            "aws",
            "aws-iot",
            broker.port,
            topic_template="councils/{gateway_id}/{dev_eui}/{kind}",
            mqtt={
                "host": "localhost",
                "tls": True,
                "ca_file": pki / "ca.crt",
                "cert_file": pki / "rogue.crt",
                "key_file": pki / "rogue.key",
            },
        )
        await lane.start(aws.make_sink(cfg, lane.ctx()))
        await lane.add([(PRIO_READING, "up", EUI, "r1", reading_body(EUI, 1, {}), 1.0)])
        await _until(lambda: lane.worker is not None and lane.worker.state == "down")
        await asyncio.sleep(0.5)
        assert await lane.depth() == 1, "nothing lost"
        reason = lane.worker.last_error or ""  # type: ignore[union-attr]
        assert reason.startswith("client_certificate_refused"), reason
    finally:
        await lane.close()
        broker.stop()


def test_daemon_end_to_end_aws_iot_mutual_tls_and_topic_template(tmp_path: Path) -> None:
    pki = _pki(tmp_path / "pki", {"admin": ADMIN[0], "thing": "thing-1"})
    broker = _tls_broker(tmp_path / "b", pki, {"thing-1": ["councils/test-gw/#"]})
    sub = _tls_sub(broker.port, pki)
    devs = fleet(2)
    agent = make_agent(
        tmp_path / "a",
        None,
        devs,
        outputs=[
            {
                "name": "aws",
                "type": "aws-iot",
                "host": "localhost",
                "port": broker.port,
                "client_id": "thing-1",
                "ca_file": str(pki / "ca.crt"),
                "cert_file": str(pki / "thing.crt"),
                "key_file": str(pki / "thing.key"),
                "topic_template": "councils/{gateway_id}/{dev_eui}/{kind}",
                "backoff_initial_s": 0.1,
                "backoff_max_s": 0.5,
            }
        ],
    )
    try:
        agent.start()
        send_all(agent, [frame(d, f, 20.0 + f) for f in range(3) for d in devs])
        assert wait_accepted(agent, 6) == 6
        assert sub.wait(lambda: len(sub.on(lambda t: t.endswith("/up"))) == 6), agent.tail()
        for d in devs:
            bodies = [
                json.loads(p)
                for t, p, _ in sub.on(lambda t, e=d["eui"]: t == f"councils/test-gw/{e}/up")
            ]
            assert [b["fCnt"] for b in bodies] == [0, 1, 2]
            assert [b["measurements"]["temperature_c"] for b in bodies] == [20.0, 21.0, 22.0]
    finally:
        agent.stop()
        sub.close()
        broker.stop()


def test_daemon_end_to_end_azure_x509(tmp_path: Path) -> None:
    pki = _pki(tmp_path / "pki", {"admin": ADMIN[0], "dev": "dev-x509"})
    broker = _tls_broker(tmp_path / "b", pki, {"dev-x509": ["devices/dev-x509/messages/events/#"]})
    sub = _tls_sub(broker.port, pki)
    devs = fleet(1)
    agent = make_agent(
        tmp_path / "a",
        None,
        devs,
        outputs=[
            {
                "name": "azure",
                "type": "azure-iothub",
                "hub": HUB,
                "device_id": "dev-x509",
                "host": "localhost",
                "port": broker.port,
                "ca_file": str(pki / "ca.crt"),
                "cert_file": str(pki / "dev.crt"),
                "key_file": str(pki / "dev.key"),
                "backoff_initial_s": 0.1,
                "backoff_max_s": 0.5,
            }
        ],
    )
    try:
        agent.start()
        send_all(agent, [frame(devs[0], f, 20.0 + f) for f in range(4)])
        assert wait_accepted(agent, 4) == 4
        prefix = "devices/dev-x509/messages/events/"
        got = lambda: sub.on(lambda t: t.startswith(prefix))  # noqa: E731
        assert sub.wait(lambda: len(got()) == 4), agent.tail()
        for f, (t, p, _) in enumerate(got()):
            props = dict(parse_qsl(t[len(prefix) :]))
            assert props["kind"] == "up" and props["devEui"] == devs[0]["eui"]
            assert props["$.ct"] == "application/json"
            assert json.loads(p)["fCnt"] == f
        assert _connects(broker, "dev-x509") == 1, "client id = device id"
    finally:
        agent.stop()
        sub.close()
        broker.stop()


async def test_event_rows_reach_azure_without_dev_eui(tmp_path: Path) -> None:
    broker = checking_broker(
        tmp_path / "b",
        {USERNAME: _expected_token(int(T0) + 3600)},
        {USERNAME: [f"devices/{DEVICE}/messages/events/#"]},
    )
    sub = Subscriber(broker.port)
    lane = Lane(tmp_path, "azure")
    key_file = tmp_path / "device.key"
    key_file.write_text(KEY)
    key_file.chmod(0o600)
    try:
        cfg = output(
            "azure", "azure-iothub", broker.port, hub=HUB, device_id=DEVICE,
            device_key_file=key_file,
        )  # fmt: skip
        await lane.start(AzureSink(cfg, lane.ctx(), clock=lambda: T0))
        ev = json.dumps({"id": "e1", "event": "config_reloaded"})
        await lane.add([(PRIO_EVENT, "event", None, "e1", ev, 1.0)])
        await lane.until_empty()
        assert sub.wait(lambda: len(sub.on(lambda t: t.startswith("devices/"))) == 1)
        ((t, p, _),) = sub.on(lambda t: t.startswith("devices/"))
        assert "devEui" not in dict(parse_qsl(t.split("/events/", 1)[1]))
        assert p == ev.encode()
    finally:
        await lane.close()
        sub.close()
        broker.stop()


def test_daemon_refuses_to_start_with_a_bad_topic_template(tmp_path: Path) -> None:
    from tests.config.test_config import run_refusal

    pki = _pki(tmp_path / "pki", {"thing": "thing-1"})
    agent = make_agent(
        tmp_path / "a",
        None,
        fleet(1),
        outputs=[
            {
                "name": "aws",
                "type": "aws-iot",
                "host": "localhost",
                "cert_file": str(pki / "thing.crt"),
                "key_file": str(pki / "thing.key"),
                "topic_template": "councils/{gateway}/{dev_eui}",
            }
        ],
    )
    reason = run_refusal(agent.config_path)
    # refused by the config check itself (so `config check` refuses it too), naming the key
    assert "outputs[0].topic_template" in reason and "{gateway}" in reason
