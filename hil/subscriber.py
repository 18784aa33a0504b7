"""The hil run's upstream consumer: a paho-mqtt subscriber that records what the agent published
(and when) into a report.Upstream, optionally printing it live."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hil.report import Upstream


class Subscriber:
    """paho-mqtt upstream consumer: `{prefix}/{gateway_id}/#`, QoS 1, records arrival times."""

    def __init__(self, port: int, topic: str, live: bool, names: dict[str, str]) -> None:
        self.up = Upstream()
        self.lock = threading.Lock()
        self.live, self.names = live, names
        # A persistent session on a persistent broker: readings the agent publishes right after
        # an outage, before this client has resubscribed, are queued for it, not dropped.
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"hil-{os.getpid()}", clean_session=False
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1.0)  # type: ignore[arg-type]  # floats work
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.monotonic()
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        with self.lock:
            if msg.topic.endswith("/up"):
                rid = str(body.get("id"))
                self.up.first_seen.setdefault(rid, now)
                self.up.count[rid] = self.up.count.get(rid, 0) + 1
                self.up.measurements[rid] = body.get("measurements") or {}
            elif msg.topic.endswith("/alert"):
                self.up.alerts.append(body)
            elif msg.topic.endswith("/events"):
                self.up.events.append(body)
        if self.live:
            self._print(msg.topic, body)

    def _print(self, topic: str, body: dict[str, Any]) -> None:
        name = self.names.get(str(body.get("devEui")), str(body.get("devEui")))
        if topic.endswith("/up"):
            m = body.get("measurements") or {}
            vals = "  ".join(f"{k}={v}" for k, v in sorted(m.items()) if k != "battery_pct")
            print(f"  reading  {name:<14} fcnt={body.get('fCnt'):<5} {vals}", flush=True)
        elif topic.endswith("/alert"):
            print(
                f"  ALERT    {name:<14} {body.get('rule')} {body.get('state')} "
                f"{body.get('measurement')}={body.get('value')}",
                flush=True,
            )
        elif topic.endswith("/events"):
            print(f"  event    {body}", flush=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
