"""End to end (issue 3): serial modems emulated on a pty feed the real daemon; unplug/replug
recovers without restarting the daemon."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hil.broker import Mosquitto
from hil.lorawan_crypto import build_data_frame
from hil.modem import LoraE5, Rn2483, Rui3
from tests.agentproc import Agent, Subscriber

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
ADDR = "260b3c5a"
EUI = "70b3d57ed0000001"


def frame(fcnt: int) -> bytes:
    return build_data_frame(
        2, bytes.fromhex(ADDR), fcnt, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1"
    )


def wait(cond, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("modem_cls", [Rn2483, Rui3, LoraE5], ids=["rn2483", "rui3", "lora-e5"])
def test_serial_modem_uplinks_and_replug(
    tmp_path: Path, broker: Mosquitto, modem_cls: type
) -> None:
    (tmp_path / "dev").mkdir()
    modem = modem_cls(workdir=tmp_path / "dev")
    modem.plug()
    dev = {
        "dev_eui": EUI,
        "class": "co2",
        "codec": "cayenne-lpp",
        "dev_addr": ADDR,
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
    }
    agent = Agent(
        tmp_path / "a",
        broker.port,
        [dev],
        extra={
            "sources": [
                {
                    "type": "serial",
                    "port": str(modem.path),
                    "format": modem.dialect,
                    "reopen_max_s": 0.5,
                }
            ]
        },
    )
    agent.start()
    sub = Subscriber(broker.port, "ga/#")
    try:
        assert wait(lambda: modem.listening), f"setup ran: {modem.commands}"
        assert modem.inject(frame(1), rssi=-71, snr=9)
        msgs = sub.wait_for(1)
        assert [m["fCnt"] for m in msgs] == [1]
        rx = msgs[0]["rxInfo"][0]
        assert rx["gatewayId"] == f"serial:{modem.path}"
        assert rx["rssi"] == -71 and rx["snr"] == 9
        modem.garbage("radio_rx  ZZZZ")  # garbage is counted, not fatal
        # Unplug, replug: the source reopens, re-runs setup, frames flow again; same daemon.
        pid = agent.proc.pid if agent.proc else None
        modem.unplug()
        time.sleep(0.3)
        modem.plug()
        assert wait(lambda: modem.listening, 15), (
            f"setup re-ran after replug: {modem.commands[-5:]}"
        )
        assert modem.inject(frame(2), rssi=-80, snr=3)
        msgs = sub.wait_for(2)
        assert [m["fCnt"] for m in msgs] == [1, 2]
        assert agent.proc is not None and agent.proc.pid == pid and agent.proc.poll() is None
        st = agent.ask("status")
        gw = st["gateways"][f"serial:{modem.path}"]
        assert gw["rx_ok"] >= 2 and gw["opens"] >= 2
    finally:
        sub.close()
        agent.stop()
        modem.close()
