"""Shared by the relay tests: an agent with `[relay]`, a raw subscriber on the relay topics,
ChirpStack's own classes to decode what it publishes, GWMP rxpk with every field set."""

from __future__ import annotations

import base64
import os
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from chirpstack_api import gw
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from tests.agentproc import Agent
from tests.durability_kit import device_table

PREFIX = "eu868"
GW_A = "b827ebfffe6c1a2b"
SUFFIX_CLASS: dict[str, type[Message]] = {
    "event/up": gw.UplinkFrame,
    "event/stats": gw.GatewayStats,
    "event/ack": gw.DownlinkTxAck,
    "state/conn": gw.ConnState,
}


def relay_agent(
    tmp: Path, port: int, devs: list[dict[str, str]], as_json: bool = False, **extra: Any
) -> Agent:
    relay = {"topic_prefix": PREFIX, "json": as_json, "stats_interval_s": 1}
    relay.update(extra.pop("relay", {}))
    return Agent(tmp, port, [device_table(d) for d in devs], extra={"relay": relay, **extra})


def rxpk(phy: bytes, tmst: int, **kw: Any) -> dict[str, Any]:
    d = {
        "time": "2026-12-06T10:12:31.402117Z",
        "tmms": 1_449_000_000_402,
        "tmst": tmst,
        "chan": 3,
        "rfch": 1,
        "brd": 0,
        "freq": 868.3,
        "stat": 1,
        "modu": "LORA",
        "datr": "SF9BW125",
        "codr": "4/5",
        "rssi": -97,
        "lsnr": -3.5,
        "size": len(phy),
        "data": base64.b64encode(phy).decode(),
    }
    d.update(kw)
    return d


def decode(topic: str, payload: bytes, as_json: bool) -> Message:
    """Strict: a payload that is not the class its topic promises fails the test."""
    suffix = "/".join(topic.split("/")[-2:])
    cls = SUFFIX_CLASS[suffix]
    m = cls()
    if as_json:
        json_format.Parse(payload.decode(), m)  # unknown fields refused
    else:
        m.ParseFromString(payload)
        assert not len(UnknownFieldSet(m)), f"{topic}: fields a {cls.__name__} does not have"
        assert m.ByteSize() == len(payload)
    return m


class RelaySub:
    """A persistent-session subscriber to `{PREFIX}/#`, raw payloads in arrival order."""

    def __init__(self, port: int, topic: str = f"{PREFIX}/#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []  # topic, payload, retained
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"relay-sub-{os.getpid()}-{id(self)}",
            clean_session=False,
        )
        # ready once the broker has granted the subscription (SUBACK), not at CONNACK: a
        # message published in between would never reach this subscriber
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.ready.set()
        self.c.on_message = self._on
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("subscriber could not connect")

    def _on(self, c: Any, u: Any, m: Any) -> None:
        with self.lock:
            self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))

    def of(self, suffix: str) -> list[tuple[str, bytes]]:
        with self.lock:
            return [(t, p) for t, p, _ in self.messages if t.endswith(suffix)]

    def wait(self, suffix: str, n: int, timeout_s: float = 20.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.of(suffix)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.of(suffix)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()
