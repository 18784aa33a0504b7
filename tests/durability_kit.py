"""Shared by the durability/cap/TLS/flood tests: a device fleet, fast uplink bursts, a persistent
subscriber on a persistent broker, and reads of the agent's SQLite file."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import cbor2
import paho.mqtt.client as mqtt

from hil.broker import Mosquitto
from hil.lorawan_crypto import build_data_frame
from tests.agentproc import Agent, Forwarder

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
HOT_RULE = {
    "name": "hot",
    "kind": "threshold",
    "measurement": "temperature_c",
    "above": 25,
    "for": "0s",
    "severity": "warning",
}


def fleet(n: int) -> list[dict[str, str]]:
    return [{"eui": f"70b3d57ed1{i:06x}", "addr": f"27{i:06x}"} for i in range(n)]


def device_table(d: dict[str, str]) -> dict[str, Any]:
    return {
        "dev_eui": d["eui"],
        "name": f"dev {d['eui'][-4:]}",
        "class": "legionella",
        "codec": "cayenne-lpp",
        "dev_addr": d["addr"],
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
        "settings": {"field_map": {"temperature_1_c": "temperature_c"}},
    }


def lpp(temp_c: float) -> bytes:
    t = round(temp_c * 10) & 0xFFFF
    return bytes([1, 0x67, t >> 8, t & 0xFF])


def frame(d: dict[str, str], fcnt: int, temp: float = 21.5) -> bytes:
    return build_data_frame(
        2, bytes.fromhex(d["addr"]), fcnt, NWK, APP, f_port=1, payload=lpp(temp)
    )


def make_agent(tmp: Path, port: int | None, devs: list[dict[str, str]], **extra: Any) -> Agent:
    return Agent(tmp, port, [device_table(d) for d in devs], extra=extra)


def send_all(agent: Agent, frames: list[bytes], per_datagram: int = 20, pace: int = 2000) -> None:
    """PUSH_DATA with several rxpk each; keep at most `pace` frames ahead of the commits so the
    bounded frame queue never has to shed (the test is about the outbox, not about overload)."""
    fw = Forwarder(agent.udp_port)
    base = agent.counter("readings_accepted")
    sent = 0
    for i in range(0, len(frames), per_datagram):
        chunk = frames[i : i + per_datagram]
        fw.push_rxpk([fw.rxpk(p) for p in chunk], wait_ack=False)
        sent += len(chunk)
        while sent - (agent.counter("readings_accepted") - base) > pace:
            time.sleep(0.02)
    fw.close()


def wait_accepted(agent: Agent, n: int, timeout_s: float = 30.0) -> int:
    deadline = time.monotonic() + timeout_s
    got = 0
    while time.monotonic() < deadline:
        got = agent.counter("readings_accepted")
        if got >= n:
            break
        time.sleep(0.05)
    return got


def persistent_broker(tmp: Path, extra: str = "") -> Mosquitto:
    mdir = tmp / "mosquitto"
    os.makedirs(mdir, exist_ok=True)
    os.chmod(mdir, 0o777)  # noqa: S103 - mosquitto started as root drops to its own user
    m = Mosquitto(
        workdir=mdir, extra_conf=f"persistence true\npersistence_location {mdir}/\n{extra}"
    )
    m.start()
    return m


class Collector:
    """paho subscriber with a persistent session: nothing is lost while it is reconnecting."""

    def __init__(self, port: int, topic: str = "ga/#", name: str = "collector") -> None:
        self.messages: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{os.getpid()}", clean_session=False
        )
        self.c.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), self.ready.set())
        self.c.on_message = self._on
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self.ready.wait(10):
            raise RuntimeError("collector could not connect")

    def _on(self, c: Any, u: Any, m: Any) -> None:
        p = m.payload
        body = json.loads(p) if p[:1] in (b"{", b"[") else cbor2.loads(p)
        with self.lock:
            self.messages.append((m.topic, body))

    def bodies(self, suffix: str) -> list[Any]:
        with self.lock:
            return [b for t, b in self.messages if t.endswith(suffix)]

    def wait(self, cond: Any, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.05)
        return bool(cond())

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def db_query(agent: Agent, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{agent.state / 'agent.db'}?mode=ro", uri=True, timeout=10) as db:
        return list(db.execute(sql))
