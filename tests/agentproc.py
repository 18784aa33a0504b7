"""Test harness: the real daemon as a subprocess (through hil.daemonproc), a real MQTT subscriber,
GWMP datagrams over UDP."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import tomli_w

from gateway_agent.control import request
from hil.daemonproc import REPO, DaemonProcess
from hil.ports import free_udp_port


def write_toml(path: Path, doc: dict[str, Any], mode: int = 0o600) -> None:
    path.write_text(tomli_w.dumps(doc))
    path.chmod(mode)


class Agent(DaemonProcess):
    """`gateway-agent run` in a subprocess with its own state dir, config and devices file."""

    def __init__(
        self,
        tmp: Path,
        broker_port: int | None,
        devices: list[dict[str, Any]],
        extra: dict[str, Any] | None = None,
        gateway_id: str = "test-gw",
    ) -> None:
        self.tmp = tmp
        self.state = tmp / "state"
        self.udp_port = free_udp_port()
        self.gateway_id = gateway_id
        tmp.mkdir(parents=True, exist_ok=True)
        self.devices_path = tmp / "devices.toml"
        write_toml(self.devices_path, {"device": devices})
        cfg: dict[str, Any] = {
            "agent": {
                "gateway_id": gateway_id,
                "state_dir": str(self.state),
                "devices_file": str(self.devices_path),
            },
            "sources": [{"type": "gwmp", "listen": f"127.0.0.1:{self.udp_port}"}],
            "upstream": {
                "host": "127.0.0.1",
                "port": broker_port or 1,
                "topic_prefix": "ga",
                "backoff_initial_s": 0.2,
                "backoff_max_s": 1.0,
                "enabled": broker_port is not None,
            },
            "store": {"commit_interval_ms": 20},
            "lorawan": {"dedup_window_ms": 50},
        }
        for k, v in (extra or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        self.cfg = cfg
        self.config_path = tmp / "agent.toml"
        write_toml(self.config_path, cfg)
        super().__init__(
            self.config_path,
            self.state / "control.sock",
            self.state / "agent.db",
            tmp / "agent.log",
            cwd=REPO,
        )

    def start(self, timeout_s: float = 15.0, env: dict[str, str] | None = None) -> None:
        super().start(timeout_s, env)

    def stop(self, timeout_s: float = 10.0) -> int:
        return super().stop(timeout_s)

    def failure_log(self) -> str:
        return "\n" + self.log()

    def ask(self, cmd: str, **args: Any) -> Any:
        return request(self.control, cmd, **args)

    def cli(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`gateway-agent -c CONFIG ARGS...` as an installer would run it (exit code not checked)."""
        return subprocess.run(
            [sys.executable, "-m", "gateway_agent", "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
        )

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def counters(self) -> dict[str, int]:
        """Raises ControlError when the daemon does not answer (DaemonProcess's returns {})."""
        return dict(self.ask("counters"))

    def counter(self, prefix: str) -> int:
        return sum(v for k, v in self.counters().items() if k.startswith(prefix))


class Subscriber:
    """A real MQTT client collecting everything under a topic filter."""

    def __init__(self, port: int, topic: str = "#") -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{os.getpid()}-{id(self)}"
        )
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: (
            c.subscribe(topic, qos=1),
            self.connected.set(),
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise RuntimeError("subscriber could not connect")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def json(self, suffix: str = "/up") -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p in self.messages if t.endswith(suffix)]

    def wait_for(
        self, n: int, suffix: str = "/up", timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = self.json(suffix)
            if len(got) >= n:
                return got
            time.sleep(0.05)
        return self.json(suffix)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Forwarder:
    """Sends GWMP PUSH_DATA datagrams like a packet forwarder (tests only; hil has the full one)."""

    def __init__(self, port: int, eui: str = "b827ebfffe6c1a2b") -> None:
        self.port = port
        self.eui = bytes.fromhex(eui)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)
        self.token = 0
        self.tmst = 1_000_000
        self.last_resp_token = b"\x00\x00"

    def rxpk(
        self, phy: bytes, rssi: int = -70, lsnr: float = 8.5, freq: float = 868.1
    ) -> dict[str, Any]:
        self.tmst = (self.tmst + 1_000_000) & 0xFFFFFFFF
        return {
            "tmst": self.tmst,
            "chan": 0,
            "rfch": 0,
            "freq": freq,
            "stat": 1,
            "modu": "LORA",
            "datr": "SF7BW125",
            "codr": "4/5",
            "rssi": rssi,
            "lsnr": lsnr,
            "size": len(phy),
            "data": base64.b64encode(phy).decode(),
        }

    def push(self, *phys: bytes, wait_ack: bool = True, **kw: Any) -> bytes | None:
        return self.push_rxpk([self.rxpk(p, **kw) for p in phys], wait_ack)

    def push_rxpk(self, rxpks: list[dict[str, Any]], wait_ack: bool = True) -> bytes | None:
        self.token = (self.token + 1) & 0xFFFF
        body = json.dumps({"rxpk": rxpks}).encode()
        self.sock.sendto(
            b"\x02" + self.token.to_bytes(2, "big") + b"\x00" + self.eui + body,
            ("127.0.0.1", self.port),
        )
        if not wait_ack:
            return None
        try:
            return self.sock.recv(64)
        except TimeoutError:
            return None

    def open_downlink(self) -> bytes:
        """PULL_DATA from a second socket (as the real forwarder does); returns the PULL_ACK."""
        self.pull_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.pull_sock.bind(("127.0.0.1", 0))
        self.pull_sock.settimeout(3)
        return self.keepalive()

    def keepalive(self) -> bytes:
        self.token = (self.token + 1) & 0xFFFF
        self.pull_sock.sendto(
            b"\x02" + self.token.to_bytes(2, "big") + b"\x02" + self.eui, ("127.0.0.1", self.port)
        )
        return self.pull_sock.recv(64)

    def pull_resp(self, timeout_s: float = 3.0, ack: bool = True) -> dict[str, Any] | None:
        """Wait for a PULL_RESP on the downlink socket; answer TX_ACK (v2) like the forwarder."""
        self.pull_sock.settimeout(timeout_s)
        try:
            data = self.pull_sock.recv(65535)
        except TimeoutError:
            return None
        assert data[0] == 2 and data[3] == 3, data[:4]
        self.last_resp_token = data[1:3]
        if ack:
            self.pull_sock.sendto(data[:3] + b"\x05" + self.eui, ("127.0.0.1", self.port))
        txpk = json.loads(data[4:])["txpk"]
        txpk["_phy"] = base64.b64decode(txpk["data"])
        return dict(txpk)

    def tx_ack_error(self, error: str) -> None:
        """Refuse the last PULL_RESP (answered with ack=False) with a txpk_ack error."""
        body = json.dumps({"txpk_ack": {"error": error}}).encode()
        self.pull_sock.sendto(
            b"\x02" + self.last_resp_token + b"\x05" + self.eui + body, ("127.0.0.1", self.port)
        )

    def raw(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def close(self) -> None:
        self.sock.close()
