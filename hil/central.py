"""The council's side of the `fleet` scenario, on the broker every agent relays to:

- `Central`: a stand-in for ChirpStack's gateway backend, built on the `chirpstack-api` classes.
  It subscribes `{prefix}/gateway/+/event/up`, decodes each message with
  `chirpstack_api.gw.UplinkFrame`, keeps every copy per gateway EUI in arrival order and merges
  copies of one frame across gateways by PHYPayload, as ChirpStack's deduplication does.
- `ReadingsMerge`: the council's reading consumer, merging the agents' own reading messages
  (`{prefix}/{gateway_id}/devices/{dev_eui}/up`) by their `id`.

Both are paho-mqtt clients (QoS 1, their own threads) connected straight to the broker.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def _client(name: str, port: int, topics: list[str]) -> tuple[mqtt.Client, threading.Event]:
    subscribed = threading.Event()
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"hil-{name}-{os.getpid()}", clean_session=False
    )
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe([(t, 1) for t in topics])
    c.on_subscribe = lambda cl, u, mid, rcs, p: subscribed.set()
    c.reconnect_delay_set(0.2, 1.0)  # type: ignore[arg-type]  # floats work
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c, subscribed


@dataclass(slots=True)
class GatewayFrames:
    """What the central received from one gateway EUI."""

    copies: list[tuple[bytes, float]] = field(default_factory=list)  # (PHYPayload, arrival)
    first: dict[bytes, float] = field(default_factory=dict)  # PHYPayload -> first arrival

    @property
    def redelivered(self) -> int:
        return len(self.copies) - len(self.first)

    def first_order(self) -> list[bytes]:
        """Each frame once, in the order its first copy arrived."""
        seen: set[bytes] = set()
        out = []
        for phy, _ in self.copies:
            if phy not in seen:
                seen.add(phy)
                out.append(phy)
        return out


class Central:
    """ChirpStack's gateway backend, stood in for with its own protobuf classes."""

    def __init__(self, port: int, topic_prefix: str = "eu868", json_mapping: bool = False) -> None:
        from chirpstack_api import gw  # the `chirpstack` extra

        self.gw = gw
        self.prefix, self.json_mapping = topic_prefix, json_mapping
        self.lock = threading.Lock()
        self.gateways: dict[str, GatewayFrames] = {}
        self.decode_errors = 0
        self.id_mismatch = 0  # rx_info.gateway_id differs from the topic's gateway
        self.no_rx_info = 0
        self.conn: list[tuple[str, str, float]] = []  # (gateway, ONLINE|OFFLINE, arrival)
        self.client, self.subscribed = _client(
            "central",
            port,
            [f"{topic_prefix}/gateway/+/event/up", f"{topic_prefix}/gateway/+/state/conn"],
        )
        self.client.on_message = self._on_message

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        return self.subscribed.wait(timeout_s)

    def _decode(self, cls: Any, payload: bytes) -> Any:
        if self.json_mapping:
            from google.protobuf import json_format

            return json_format.Parse(payload, cls())
        return cls.FromString(payload)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.monotonic()
        parts = msg.topic.split("/")
        if len(parts) < 5:
            return
        gw_topic, what = parts[-3], "/".join(parts[-2:])
        try:
            if what == "state/conn":
                st = self._decode(self.gw.ConnState, msg.payload)
                name = self.gw.ConnState.State.Name(st.state)
                with self.lock:
                    self.conn.append((gw_topic, name, now))
                return
            frame = self._decode(self.gw.UplinkFrame, msg.payload)
        except Exception:  # a malformed message is counted, the consumer goes on
            with self.lock:
                self.decode_errors += 1
            return
        phy = bytes(frame.phy_payload)
        with self.lock:
            if not frame.HasField("rx_info"):
                self.no_rx_info += 1
            elif frame.rx_info.gateway_id != gw_topic:
                self.id_mismatch += 1
            g = self.gateways.setdefault(gw_topic, GatewayFrames())
            g.copies.append((phy, now))
            g.first.setdefault(phy, now)

    def received(self, gateway: str) -> set[bytes]:
        with self.lock:
            g = self.gateways.get(gateway)
            return set(g.first) if g else set()

    def uplinks(self) -> dict[bytes, set[str]]:
        """The network server's view: each PHYPayload once, with the gateways that relayed it."""
        out: dict[bytes, set[str]] = {}
        with self.lock:
            for eui, g in self.gateways.items():
                for phy in g.first:
                    out.setdefault(phy, set()).add(eui)
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class ReadingsMerge:
    """The agents' readings merged by `id`: one entry per uplink, whichever agents decoded it."""

    def __init__(self, port: int, topic_prefix: str) -> None:
        self.lock = threading.Lock()
        self.copies: dict[str, dict[str, int]] = {}  # id -> agent gateway_id -> messages
        self.first: dict[tuple[str, str], float] = {}  # (id, agent) -> first arrival
        self.measurements: dict[str, Mapping[str, Any]] = {}
        self.messages = 0
        self.bad = 0
        self.client, self.subscribed = _client("readings", port, [f"{topic_prefix}/+/devices/+/up"])
        self.client.on_message = self._on_message

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        return self.subscribed.wait(timeout_s)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.monotonic()
        agent = msg.topic.split("/")[-4]
        try:
            body = json.loads(msg.payload)
            rid = str(body["id"])
        except (ValueError, KeyError, TypeError):
            with self.lock:
                self.bad += 1
            return
        with self.lock:
            self.messages += 1
            per = self.copies.setdefault(rid, {})
            per[agent] = per.get(agent, 0) + 1
            self.first.setdefault((rid, agent), now)
            if rid not in self.measurements:
                self.measurements[rid] = body.get("measurements") or {}

    def ids(self, agent: str | None = None) -> set[str]:
        with self.lock:
            if agent is None:
                return set(self.copies)
            return {i for i, per in self.copies.items() if agent in per}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
