"""Edge rules in the real daemon (issue 6): a restart inside a `for` window fires once, on time;
silence raises an offline alert with no uplink arriving; actions run (argv, JSON on stdin); a
codec failure still stores and forwards the raw payload with the error (issue 4)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from hil.broker import Mosquitto
from hil.lorawan_crypto import build_data_frame
from tests.agentproc import Agent, Forwarder, Subscriber

NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
D1 = {"eui": "70b3d57ed0000001", "addr": "260b3c5a"}
D2 = {"eui": "70b3d57ed0000002", "addr": "260b3c5b"}


def dev(d: dict[str, str], codec: str = "cayenne-lpp") -> dict[str, Any]:
    return {
        "dev_eui": d["eui"],
        "class": "co2",
        "codec": codec,
        "dev_addr": d["addr"],
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
        "settings": {"field_map": {"temperature_1_c": "temperature_c"}},
    }


def temp_frame(d: dict[str, str], fcnt: int, temp: float) -> bytes:
    t = round(temp * 10) & 0xFFFF
    return build_data_frame(
        2,
        bytes.fromhex(d["addr"]),
        fcnt,
        NWK,
        APP,
        f_port=1,
        payload=bytes([1, 0x67, t >> 8, t & 0xFF]),
    )


def alerts(sub: Subscriber) -> list[dict[str, Any]]:
    return sub.json("/alert")


def test_restart_inside_for_window_fires_once_on_time(tmp_path: Path, broker: Mosquitto) -> None:
    rules = [
        {
            "name": "hot",
            "kind": "threshold",
            "measurement": "temperature_c",
            "above": 25.0,
            "clear": 23.0,
            "for": "4s",
            "severity": "warning",
        }
    ]
    agent = Agent(tmp_path / "a", broker.port, [dev(D1)], extra={"rules": rules})
    agent.start()
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    t0 = time.time()
    fw.push(temp_frame(D1, 1, 30.0))  # the `for` window starts here
    assert len(sub.wait_for(1)) == 1
    time.sleep(1.0)
    agent.stop()  # restart in the middle of the window
    time.sleep(0.5)
    agent.start()
    deadline = time.monotonic() + 12
    while not alerts(sub) and time.monotonic() < deadline:
        time.sleep(0.05)
    got = alerts(sub)
    assert len(got) == 1 and got[0]["state"] == "raised" and got[0]["rule"] == "hot"
    fired_after = time.time() - t0
    assert 4.0 <= fired_after <= 4.0 + 2 * 2.0 + 1.5, (
        f"fired {fired_after:.1f}s after the window opened"
    )
    assert got[0]["value"] == 30.0 and got[0]["devEui"] == D1["eui"]
    # Another restart: the raised alert is remembered, never re-fired.
    agent.stop()
    agent.start()
    fw.push(temp_frame(D1, 2, 31.0))
    time.sleep(3)
    assert len(alerts(sub)) == 1
    assert agent.ask("alerts")[0]["id"] == got[0]["id"]
    agent.stop()
    sub.close()


def test_silence_raises_offline_without_uplinks_and_runs_action(
    tmp_path: Path, broker: Mosquitto
) -> None:
    out = tmp_path / "action.json"
    script = tmp_path / "action.py"
    script.write_text(
        f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read())\n"
    )
    rules = [
        {
            "name": "offline",
            "kind": "silence",
            "for": "3s",
            "severity": "critical",
            "command": [sys.executable, str(script)],
            "actions_on": "both",
        }
    ]
    agent = Agent(tmp_path / "a", broker.port, [dev(D1)], extra={"rules": rules})
    agent.start()
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    fw.push(temp_frame(D1, 1, 20.0))
    t_last = time.time()
    deadline = time.monotonic() + 12
    while not alerts(sub) and time.monotonic() < deadline:
        time.sleep(0.05)
    got = alerts(sub)
    assert [a["state"] for a in got] == ["raised"], "offline alert with no uplink arriving"
    waited = time.time() - t_last
    assert 3.0 <= waited <= 3.0 + 2 * 2.0 + 1.0, f"raised {waited:.1f}s after the last uplink"
    deadline = time.monotonic() + 5
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    body = json.loads(out.read_text())
    assert body["rule"] == "offline" and body["state"] == "raised" and body["devEui"] == D1["eui"]
    fw.push(temp_frame(D1, 2, 20.0))  # the next uplink clears it
    deadline = time.monotonic() + 5
    while len(alerts(sub)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [a["state"] for a in alerts(sub)] == ["raised", "cleared"]
    agent.stop()
    sub.close()


def test_codec_failure_still_stores_and_forwards_raw_payload(
    tmp_path: Path, broker: Mosquitto
) -> None:
    agent = Agent(tmp_path / "a", broker.port, [dev(D2, codec="dragino/ldds20")])
    agent.start()
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    # fPort 1 with an LPP payload: the LDDS20 codec only accepts fPort 2 -> decode error.
    fw.push(temp_frame(D2, 1, 20.0))
    msgs = sub.wait_for(1)
    assert len(msgs) == 1
    m = msgs[0]
    assert m["decodeError"] and m["measurements"] == {}
    assert m["data"] == "AWcAyA=="  # the raw (decrypted) payload is forwarded all the same
    rows = agent.ask("readings")
    assert rows[0]["decode_error"] and rows[0]["payload"] == "016700c8"
    assert agent.counter("decode_errors") == 1
    agent.stop()
    sub.close()
