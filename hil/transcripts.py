"""Regenerates the transcripts in docs/cli.md: the real daemon fed by simulated uplinks (hil sensor
models, hil's own LoRaWAN encoder, GWMP over loopback, a private mosquitto), then the CLI captured
as a field engineer runs it. `python -m hil.transcripts [--write docs/cli.md] [--step-s 1.0]`."""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from hil.broker import Mosquitto
from hil.daemonproc import REPO, DaemonProcess
from hil.lorawan_crypto import build_data_frame
from hil.ports import free_udp_port
from hil.sensors import SensorModel, make_model

BEGIN, END = "<!-- transcripts:begin -->", "<!-- transcripts:end -->"
GATEWAY_EUI = bytes.fromhex("b827ebfffe6c1a2b")
SIM_STEP_S = 600.0  # simulated seconds per feeding step (one uplink per device)
WIDTH = "120"


@dataclass(slots=True)
class SimDevice:
    eui: str
    name: str
    model: SensorModel
    dev_addr: bytes
    nwk: bytes
    app: bytes
    tags: tuple[str, ...] = ()
    fcnt: int = 0

    def table(self) -> dict[str, Any]:
        t: dict[str, Any] = {
            "dev_eui": self.eui,
            "name": self.name,
            "class": self.model.device_class,
            "codec": self.model.codec,
            "tags": ["fife", "school-017", *self.tags],
            "dev_addr": self.dev_addr.hex(),
            "nwk_s_key": self.nwk.hex(),
            "app_s_key": self.app.hex(),
        }
        if self.model.settings:
            t["settings"] = dict(self.model.settings)
        return t


def fleet(epoch: float) -> list[SimDevice]:
    rng = random.Random(17)
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("P7 classroom", "co2", {"pupils": 30}),
        ("P3 classroom", "co2", {"pupils": 22}),
        ("kitchen hot outlet", "legionella", {"hot": True, "calorifier_fail_s": 5 * 3600.0}),
        ("kitchen cold feed", "legionella", {"hot": False}),
        ("playground bin", "bin", {}),
    ]
    out = []
    for i, (name, cls, params) in enumerate(specs, start=1):
        model = make_model(cls, seed=100 + i, epoch=epoch, **params)
        out.append(
            SimDevice(
                eui=f"70b3d57ed00000{i:02x}",
                name=name,
                model=model,
                dev_addr=bytes.fromhex(f"260b3c{0x50 + i:02x}"),
                nwk=rng.randbytes(16),
                app=rng.randbytes(16),
                tags=("hot",) if params.get("hot") else (),
            )
        )
    return out


RULES = [
    {
        "name": "co2_high",
        "kind": "threshold",
        "measurement": "co2_ppm",
        "above": 1500,
        "for": "0s",
        "severity": "warning",
    },
    {
        "name": "legionella_hot_low",
        "kind": "threshold",
        "measurement": "temperature_c",
        "below": 50,
        "for": "0s",
        "severity": "critical",
        "select": {"tags_any": ["hot"]},
    },
]


class Gwmp:
    """PUSH_DATA from one gateway EUI, each datagram waiting for its PUSH_ACK."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)
        self.token = 0
        self.tmst = 1_000_000
        self.rng = random.Random(5)

    def push(self, phy: bytes) -> None:
        self.token = (self.token + 1) & 0xFFFF
        self.tmst = (self.tmst + 1_000_000) & 0xFFFFFFFF
        rxpk = {
            "tmst": self.tmst,
            "chan": 0,
            "rfch": 0,
            "freq": self.rng.choice([868.1, 868.3, 868.5]),
            "stat": 1,
            "modu": "LORA",
            "datr": "SF7BW125",
            "codr": "4/5",
            "rssi": self.rng.randint(-105, -70),
            "lsnr": round(self.rng.uniform(-2.0, 9.5), 1),
            "size": len(phy),
            "data": base64.b64encode(phy).decode(),
        }
        hdr = b"\x02" + self.token.to_bytes(2, "big") + b"\x00" + GATEWAY_EUI
        self.sock.sendto(hdr + json.dumps({"rxpk": [rxpk]}).encode(), ("127.0.0.1", self.port))
        try:
            self.sock.recv(64)
        except TimeoutError:
            print("warning: no PUSH_ACK", file=sys.stderr)


def send_step(gw: Gwmp, devices: list[SimDevice], k: int) -> None:
    for d in devices:
        s = d.model.sample(k * SIM_STEP_S)
        gw.push(
            build_data_frame(
                2, d.dev_addr, d.fcnt, d.nwk, d.app, f_port=s.f_port, payload=s.payload
            )
        )
        d.fcnt += 1


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GATEWAY_AGENT_CONFIG", "LINES")}
    env["COLUMNS"] = WIDTH
    return env


def cli(cfg: Path, *args: str) -> str:
    p = subprocess.run(
        [sys.executable, "-m", "gateway_agent", "-c", str(cfg), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(),
        cwd=REPO,
    )
    if p.returncode != 0:
        raise RuntimeError(f"gateway-agent {' '.join(args)}: rc={p.returncode}\n{p.stderr}")
    return p.stdout


def block(args: list[str], out: str) -> str:
    body = "\n".join(line.rstrip() for line in out.rstrip("\n").splitlines())
    return f"```console\n$ gateway-agent {' '.join(args)}\n{body}\n```\n"


def capture(step_s: float, steps: int) -> str:
    with tempfile.TemporaryDirectory(prefix="ga-transcripts-") as d:
        tmp = Path(d)
        broker = Mosquitto(workdir=tmp / "mosquitto")
        broker.start()
        daemon: DaemonProcess | None = None
        try:
            epoch = 1_741_591_800.0  # a Monday, 07:30 UTC (school opens at 08:50)
            devices = fleet(epoch)
            state = tmp / "state"
            udp = free_udp_port()
            devs_file = tmp / "devices.toml"
            devs_file.write_text(tomli_w.dumps({"device": [x.table() for x in devices]}))
            devs_file.chmod(0o600)
            cfg = tmp / "agent.toml"
            doc = {
                "agent": {
                    "gateway_id": "fife-ps-017",
                    "state_dir": str(state),
                    "devices_file": str(devs_file),
                },
                "sources": [{"type": "gwmp", "listen": f"127.0.0.1:{udp}"}],
                "upstream": {
                    "host": "127.0.0.1",
                    "port": broker.port,
                    "topic_prefix": "gateway-agent",
                },
                "rules": RULES,
            }
            cfg.write_text(tomli_w.dumps(doc))
            daemon = DaemonProcess(
                cfg, state / "control.sock", state / "agent.db", tmp / "agent.log", cwd=REPO
            )
            daemon.start()
            gw = Gwmp(udp)
            print(
                f"feeding {steps} steps x {len(devices)} devices, {step_s} s apart", file=sys.stderr
            )
            fed_from = time.time()
            for k in range(steps):
                send_step(gw, devices, k)
                time.sleep(step_s)
            out = []
            out.append(block(["status"], cli(cfg, "status")))
            out.append(block(["devices", "list"], cli(cfg, "devices", "list")))
            # `readings tail` follows from the moment it connects: start it, then send a round.
            tail_args = ["readings", "tail", "--count", str(len(devices))]
            p = subprocess.Popen(
                [sys.executable, "-m", "gateway_agent", "-c", str(cfg), *tail_args],
                stdout=subprocess.PIPE,
                text=True,
                env=cli_env(),
                cwd=REPO,
            )
            time.sleep(1.5)
            k = steps
            while p.poll() is None and k < steps + 10:
                send_step(gw, devices, k)
                k += 1
                time.sleep(1.0)
            tail_out, _ = p.communicate(timeout=10)
            out.append(block(tail_args, tail_out))
            # The simulated school day went by in a few wall seconds: plot exactly that window.
            span = f"{int(time.time() - fed_from) + 2}s"
            co2 = devices[0].eui
            plot_args = ["plot", "--device", co2, "-m", "co2_ppm", "--since", span, "--width", "90"]
            out.append(block(plot_args, cli(cfg, *plot_args)))
            hot = devices[2].eui
            spark = ["plot", "--device", hot, "-m", "temperature_c", "--since", span, "--spark"]
            out.append(block(spark, cli(cfg, *spark)))
            out.append(block(["alerts", "list"], cli(cfg, "alerts", "list")))
            out.append(block(["outbox", "status"], cli(cfg, "outbox", "status")))
            return "\n".join(out)
        finally:
            if daemon is not None:
                daemon.stop()
            broker.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", type=Path, help="replace the transcripts section of this file")
    ap.add_argument("--step-s", type=float, default=1.0, help="wall seconds per simulated 10 min")
    ap.add_argument("--steps", type=int, default=48, help="feeding steps before the captures")
    a = ap.parse_args(argv)
    text = capture(a.step_s, a.steps)
    if not a.write:
        print(text)
        return 0
    doc = a.write.read_text()
    if BEGIN not in doc or END not in doc:
        print(f"{a.write}: no {BEGIN} ... {END} section", file=sys.stderr)
        return 1
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    a.write.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")
    print(f"wrote {a.write}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
