"""For the MQTT-based outputs' tests: a real mosquitto that checks username, password and topic
(password file + ACL), a subscriber that keeps raw payloads and retain flags, and a sink driven
by the real OutputWorker over a real SQLite lane."""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from gateway_agent.config import UpstreamConfig
from gateway_agent.config.outputs import OutputConfig
from gateway_agent.metrics import Counters
from gateway_agent.outputs.worker import OutputWorker, Sink, SinkContext
from gateway_agent.store import Store
from gateway_agent.store.thread import StoreThread
from hil.broker import Mosquitto

ADMIN = ("admin", "admin-pw")  # the test's own subscriber: reads everything


def checking_broker(
    workdir: Path,
    users: dict[str, str],
    acl: dict[str, list[str]],
    extra: str = "",
) -> Mosquitto:
    """mosquitto with `allow_anonymous false`, a password file (made by mosquitto_passwd) and an
    ACL: `acl[user]` lists the topics that user may write (the admin reads `#`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    pw = workdir / "passwd"
    pw.touch()
    for user, password in {**users, ADMIN[0]: ADMIN[1]}.items():
        subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
    lines = [f"user {ADMIN[0]}", "topic read #", "topic read $SYS/#"]
    for user, topics in acl.items():
        lines.append(f"user {user}")
        lines += [f"topic write {t}" for t in topics]
    (workdir / "acl").write_text("\n".join(lines) + "\n")
    m = Mosquitto(
        workdir=workdir / "mq",
        allow_anonymous=False,
        extra_conf=f"password_file {pw}\nacl_file {workdir / 'acl'}\n{extra}",
    )
    m.start()
    return m


class Subscriber:
    """paho subscriber (as the admin user when `auth`): every message as (topic, payload, retain)."""

    def __init__(self, port: int, topic: str = "#", auth: bool = True, **tls: Any) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,  # type: ignore[attr-defined]
            client_id=f"sub-{os.getpid()}-{id(self)}",
        )
        if auth:
            self.c.username_pw_set(*ADMIN)
        if tls:
            self.c.tls_set(**tls)

        def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
            c.subscribe(topic, qos=1)
            ready.set()

        self.c.on_connect = on_connect
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not ready.wait(10):
            raise RuntimeError("subscriber could not connect")
        time.sleep(0.2)  # the SUBACK

    def _on(self, c: Any, u: Any, m: Any) -> None:
        with self.lock:
            self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))

    def on(self, pred: Callable[[str], bool]) -> list[tuple[str, bytes, bool]]:
        with self.lock:
            return [x for x in self.messages if pred(x[0])]

    def wait(self, cond: Callable[[], bool], timeout_s: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cond():
                return True
            time.sleep(0.05)
        return bool(cond())

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def output(name: str, typ: str, port: int, **kw: Any) -> OutputConfig:
    """An OutputConfig as config/outputs.py makes it (fast backoff for tests)."""
    conn = {"host": "127.0.0.1", "port": port, "backoff_initial_s": 0.05, "backoff_max_s": 0.5}
    mq = replace(UpstreamConfig(), **{**conn, **kw.pop("mqtt", {})})
    return OutputConfig(
        name=name,
        type=typ,
        mqtt=mq,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        timeout_s=5.0,
        **kw,
    )


class Lane:
    """One output's lane in a real SQLite file, drained by the real OutputWorker into `sink`."""

    def __init__(self, tmp: Path, name: str) -> None:
        self.tmp, self.name = tmp, name
        self.st = StoreThread()
        self.counters = Counters()
        self.store: Store | None = None
        self.worker: OutputWorker | None = None
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def ctx(self) -> SinkContext:
        return SinkContext("test-gw", self.counters, self.tmp)

    async def start(self, sink: Sink) -> None:
        self.store = await self.st.call(Store, self.tmp / "agent.db")
        self.worker = OutputWorker(
            self.name, sink, self.store, self.st.call, self.counters, 50, (0.05, 0.5)
        )
        self.task = asyncio.create_task(self.worker.run(self.stop))

    async def add(self, rows: Sequence[tuple[int, str, str | None, str, str, float]]) -> None:
        """(priority, kind, dev_eui, msg_id, body, created) rows for this lane."""
        assert self.store is not None
        await self.st.call(self.store.queue_add, [(self.name, *r) for r in rows])
        assert self.worker is not None
        self.worker.notify_commit()

    async def depth(self) -> int:
        assert self.store is not None
        stats = await self.st.call(self.store.queue_stats)
        return int(stats.get(self.name, {}).get("depth", 0))

    async def until_empty(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while await self.depth():
            assert time.monotonic() < deadline, (
                f"lane not drained: {self.worker and self.worker.status()}"
            )
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)
        if self.store is not None:
            await self.st.call(self.store.close)
        self.st.close()


def reading_body(eui: str, fcnt: int, measurements: dict[str, float], name: str = "") -> str:
    """The JSON body ingest stages for a reading (formats.uplink_message), from a real Reading."""
    from gateway_agent.lorawan.radio import RxInfo
    from gateway_agent.model import Reading
    from gateway_agent.upstream.formats import dumps, uplink_message

    rx = RxInfo(
        gateway_id="b827ebfffe6c1a2b",
        rx_mono=1.0,
        rx_wall=1_765_000_000.5 + fcnt,
        freq_hz=868_100_000,
        sf=7,
        bw_khz=125,
        code_rate="4/5",
        rssi_dbm=-71.0,
        snr_db=9.5,
        channel=0,
        rf_chain=0,
        tmst=123456,
    )
    r = Reading(
        id=f"{eui}-s1-{fcnt}",
        dev_eui=bytes.fromhex(eui),
        dev_addr=bytes.fromhex("26011bda"),
        fcnt=fcnt,
        f_port=1,
        payload=bytes([1, 0x67, 0, 215]),
        time=1_765_000_000.5 + fcnt,
        codec="cayenne-lpp",
        measurements=measurements,
        object={"temperature_1": 21.5},
        rx=(rx,),
    )
    return dumps(uplink_message(r, "test-gw", name, ["site=fife", "boiler"]))


def alert_body(eui: str, rule: str, state: str, n: int = 0) -> str:
    from gateway_agent.model import Alert
    from gateway_agent.upstream.formats import alert_message, dumps

    a = Alert(
        id=f"{eui}:{rule}:{n}",
        dev_eui=bytes.fromhex(eui),
        rule=rule,
        state=state,
        severity="warning",
        measurement="temperature_c",
        value=26.5,
        time=1_765_000_100.0 + n,
        message=f"{rule} {state}",
    )
    return dumps(alert_message(a))
