"""End to end (issue 3): OTAA over UDP with the real daemon, confirmed-uplink ACKs and queued
downlinks in RX1, and one reading for an uplink heard by three gateways."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest

from hil.broker import Mosquitto
from hil.lorawan_crypto import (
    build_data_frame,
    build_join_request,
    derive_session_keys,
    frm_cipher,
    open_join_accept,
)
from tests.agentproc import Agent, Forwarder, Subscriber

APP_KEY = bytes.fromhex("5a3c2f1e0d9b8a7c6e5f4d3c2b1a0f9e")
JOIN_EUI = bytes.fromhex("70b3d57ed0001234")
DEV_EUI = bytes.fromhex("0004a30b001c0530")
NWK = bytes.fromhex("8f2e1b0c4d6a7e3f9b5c2d1e0a4f6b7c")
APP = bytes.fromhex("1c9e7a3b5d2f4e6a8b0c1d3e5f7a9b2c")
ABP_EUI, ABP_ADDR = "70b3d57ed0000001", "260b3c5a"


def otaa_device() -> dict[str, Any]:
    return {
        "dev_eui": DEV_EUI.hex(),
        "name": "otaa",
        "class": "co2",
        "codec": "cayenne-lpp",
        "join_eui": JOIN_EUI.hex(),
        "app_key": APP_KEY.hex(),
    }


def abp_device() -> dict[str, Any]:
    return {
        "dev_eui": ABP_EUI,
        "name": "abp",
        "class": "co2",
        "codec": "cayenne-lpp",
        "dev_addr": ABP_ADDR,
        "nwk_s_key": NWK.hex(),
        "app_s_key": APP.hex(),
    }


@pytest.fixture
def agent(tmp_path: Path, broker: Mosquitto):  # type: ignore[no-untyped-def]
    a = Agent(tmp_path / "a", broker.port, [otaa_device(), abp_device()])
    a.start()
    yield a
    a.kill()
    print(a.log()[-5000:])


def rxpk(
    fw: Forwarder,
    phy: bytes,
    tmst: int,
    freq: float = 868.1,
    datr: str = "SF10BW125",
    rssi: int = -80,
    lsnr: float = 5.0,
) -> dict[str, Any]:
    return {
        "tmst": tmst,
        "chan": 0,
        "rfch": 0,
        "freq": freq,
        "stat": 1,
        "modu": "LORA",
        "datr": datr,
        "codr": "4/5",
        "rssi": rssi,
        "lsnr": lsnr,
        "size": len(phy),
        "data": base64.b64encode(phy).decode(),
    }


def test_otaa_join_then_uplinks(agent: Agent, broker: Mosquitto) -> None:
    sub = Subscriber(broker.port, "ga/#")
    fw = Forwarder(agent.udp_port)
    assert fw.open_downlink()[3] == 0x04  # PULL_ACK
    jr = build_join_request(JOIN_EUI, DEV_EUI, 1, APP_KEY)
    fw.push_rxpk([rxpk(fw, jr, tmst=2_000_000_000)])
    txpk = fw.pull_resp(timeout_s=4)
    assert txpk is not None, "join-accept sent as a PULL_RESP"
    assert txpk["tmst"] == 2_005_000_000, "RX1 = join tmst + JOIN_ACCEPT_DELAY1 (5 s)"
    assert txpk["freq"] == 868.1 and txpk["datr"] == "SF10BW125"
    assert txpk["ipol"] is True and txpk["ncrc"] is True and txpk["size"] == len(txpk["_phy"])
    ja = open_join_accept(txpk["_phy"], APP_KEY)  # the device's own decrypt + MIC check
    nwk, app = derive_session_keys(APP_KEY, ja.join_nonce, ja.net_id, 1)
    assert len(ja.cflist) == 16, "EU868 CFList with the five extra channels"
    # The device's next uplinks, with the keys it derived, come out upstream.
    for fcnt in range(3):
        phy = build_data_frame(
            2, ja.dev_addr, fcnt, nwk, app, f_port=2, payload=bytes([1, 0x67, 0, 200 + fcnt])
        )
        fw.push_rxpk([rxpk(fw, phy, tmst=2_100_000_000 + fcnt)])
    msgs = sub.wait_for(3)
    assert [m["fCnt"] for m in msgs] == [0, 1, 2]
    assert {m["devEui"] for m in msgs} == {DEV_EUI.hex()}
    assert msgs[0]["devAddr"] == ja.dev_addr.hex()
    assert msgs[2]["object"]["temperature_1_c"] == pytest.approx(20.2)
    # A replayed JoinRequest (same DevNonce) is refused: no second join-accept.
    fw.push_rxpk([rxpk(fw, jr, tmst=2_200_000_000)])
    assert fw.pull_resp(timeout_s=1.5) is None
    # (a quick identical copy is already stopped by the dedup memory; later ones by the DevNonce check)
    assert (
        agent.counter("bad_input{reason=join_dev_nonce_reused") + agent.counter("frames_duplicate")
        == 1
    )
    # ...and the session survives a restart (keys, DevNonce history and counters are in the DB).
    agent.stop()
    agent.start()
    fw.keepalive()
    fw.push_rxpk([rxpk(fw, jr, tmst=2_300_000_000)])
    assert fw.pull_resp(timeout_s=1.5) is None, "DevNonce reuse is remembered across restarts"
    assert agent.counter("bad_input{reason=join_dev_nonce_reused") == 1
    phy = build_data_frame(2, ja.dev_addr, 3, nwk, app, f_port=2, payload=bytes([1, 0x67, 0, 250]))
    fw.push_rxpk([rxpk(fw, phy, tmst=2_400_000_000)])
    assert [m["fCnt"] for m in sub.wait_for(4)] == [0, 1, 2, 3]
    # A new DevNonce joins again (new session).
    fw.push_rxpk([rxpk(fw, build_join_request(JOIN_EUI, DEV_EUI, 2, APP_KEY), tmst=2_500_000_000)])
    txpk2 = fw.pull_resp(timeout_s=4)
    assert txpk2 is not None and txpk2["tmst"] == 2_505_000_000
    sub.close()


def test_confirmed_uplink_acked_and_queued_downlink_sent(agent: Agent, broker: Mosquitto) -> None:
    fw = Forwarder(agent.udp_port)
    fw.open_downlink()
    addr = bytes.fromhex(ABP_ADDR)
    # Confirmed uplink -> ACK in RX1 (tmst + 1 s, same frequency, same DR).
    phy = build_data_frame(4, addr, 7, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1")
    fw.push_rxpk([rxpk(fw, phy, tmst=4_294_000_000, freq=868.3, datr="SF7BW125")])
    txpk = fw.pull_resp(timeout_s=3)
    assert txpk is not None
    assert txpk["tmst"] == (4_294_000_000 + 1_000_000) & 0xFFFFFFFF, "tmst arithmetic wraps at 2^32"
    assert txpk["freq"] == 868.3 and txpk["datr"] == "SF7BW125"
    down = txpk["_phy"]
    assert down[0] == 0x60 and down[5] & 0x20, "UnconfirmedDataDown with FCtrl.ACK"
    assert len(down) == 12
    # An application downlink queued from the CLI goes out in the next RX1.
    agent.ask("downlink", dev_eui=ABP_EUI, f_port=10, payload="cafe")
    phy = build_data_frame(2, addr, 8, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1")
    fw.push_rxpk([rxpk(fw, phy, tmst=1_000_000, datr="SF9BW125")])
    txpk = fw.pull_resp(timeout_s=3)
    assert txpk is not None and txpk["tmst"] == 2_000_000 and txpk["datr"] == "SF9BW125"
    down = txpk["_phy"]
    fcnt_down = int.from_bytes(down[6:8], "little")
    assert fcnt_down == 1, "FCntDown advanced and persisted per downlink"
    f_port = down[8]
    assert f_port == 10
    plain = frm_cipher(APP, 1, addr, fcnt_down, down[9:-4])
    assert plain == bytes.fromhex("cafe")


def test_three_gateways_one_reading(agent: Agent, broker: Mosquitto) -> None:
    sub = Subscriber(broker.port, "ga/#")
    gws = [Forwarder(agent.udp_port, eui=f"b827ebfffe00000{i}") for i in range(3)]
    phy = build_data_frame(
        2, bytes.fromhex(ABP_ADDR), 1, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1"
    )
    for i, fw in enumerate(gws):  # within 50 ms, different signal each
        fw.push_rxpk([rxpk(fw, phy, tmst=10_000 + i, rssi=-100 + 10 * i, lsnr=-2.0 + 3 * i)])
        time.sleep(0.015)
    msgs = sub.wait_for(1)
    time.sleep(0.5)
    msgs = sub.json("/up")
    assert len(msgs) == 1, "exactly one reading upstream"
    rx = msgs[0]["rxInfo"]
    assert len(rx) == 3
    assert [r["gatewayId"] for r in rx] == [
        "b827ebfffe000002",
        "b827ebfffe000001",
        "b827ebfffe000000",
    ], "best first"
    sub.close()


def test_mac_requests_and_adr_ack_req_are_answered(agent: Agent, broker: Mosquitto) -> None:
    """LinkCheckReq and DeviceTimeReq in FOpts get their answers in the RX1 downlink; an
    ADRACKReq gets an (empty) downlink, so the device keeps its data rate."""
    from gateway_agent.lorawan.downlink import gps_time
    from gateway_agent.lorawan.mac import parse_mac_commands

    fw = Forwarder(agent.udp_port)
    fw.open_downlink()
    addr = bytes.fromhex(ABP_ADDR)
    before = time.time()
    phy = build_data_frame(
        2, addr, 20, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1", fopts=b"\x02\x0d"
    )
    fw.push_rxpk([rxpk(fw, phy, tmst=5_000_000, datr="SF9BW125", lsnr=-4.0)])
    txpk = fw.pull_resp(timeout_s=3)
    after = time.time()
    assert txpk is not None and txpk["tmst"] == 6_000_000, "RX1"
    down = txpk["_phy"]
    assert down[0] == 0x60 and not down[5] & 0x20, "UnconfirmedDataDown, no ACK asked for"
    fopts = down[8 : 8 + (down[5] & 0x0F)]
    cmds = parse_mac_commands(fopts, uplink=False)
    assert [c.name for c in cmds] == ["LinkCheckAns", "DeviceTimeAns"]
    assert dict(cmds[0].fields) == {"margin": 8, "gw_cnt": 1}  # -4 dB over SF9's -12.5 dB
    gps_s = int.from_bytes(fopts[4:8], "little")
    assert gps_time(before)[0] - 1 <= gps_s <= gps_time(after)[0]
    assert agent.counter("mac_answered{command=DeviceTimeAns") == 1
    # ADRACKReq set, nothing else asked: an empty downlink all the same.
    phy = build_data_frame(
        2, addr, 21, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1", adr=True, adr_ack_req=True
    )
    fw.push_rxpk([rxpk(fw, phy, tmst=7_000_000, datr="SF9BW125")])
    txpk = fw.pull_resp(timeout_s=3)
    assert txpk is not None and txpk["tmst"] == 8_000_000
    assert len(txpk["_phy"]) == 12 and txpk["_phy"][5] & 0x0F == 0, "no FOpts, no payload"
    assert agent.counter("downlinks_sent{purpose=adr") == 1
    # An ordinary uplink gets no downlink at all.
    phy = build_data_frame(2, addr, 22, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1")
    fw.push_rxpk([rxpk(fw, phy, tmst=9_000_000)])
    assert fw.pull_resp(timeout_s=1.5) is None


def test_adr_moves_a_device_heard_well_to_a_faster_data_rate(
    agent: Agent, broker: Mosquitto
) -> None:
    """A device with the ADR bit, heard at SF12 with a wide margin for 20 uplinks, is asked
    (LinkADRReq in FOpts) to move to DR5; its LinkADRAns at SF7 confirms it."""
    from gateway_agent.lorawan import adr
    from gateway_agent.lorawan.mac import parse_mac_commands

    fw = Forwarder(agent.udp_port)
    fw.open_downlink()
    addr = bytes.fromhex(ABP_ADDR)
    for fcnt in range(30, 30 + adr.HISTORY):
        phy = build_data_frame(
            2, addr, fcnt, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1", adr=True
        )
        fw.push_rxpk([rxpk(fw, phy, tmst=fcnt * 10_000_000, datr="SF12BW125", lsnr=5.5)])
        if fcnt < 29 + adr.HISTORY:
            assert fw.pull_resp(timeout_s=0.3) is None, "no downlink before a full history"
    txpk = fw.pull_resp(timeout_s=3)
    assert txpk is not None and txpk["datr"] == "SF12BW125", "RX1 at the uplink's DR"
    down = txpk["_phy"]
    (cmd,) = parse_mac_commands(down[8 : 8 + (down[5] & 0x0F)], uplink=False)
    assert cmd.name == "LinkADRReq" and cmd.raw == bytes.fromhex("0350000061")
    assert agent.counter("mac_answered{command=LinkADRReq") == 1
    # The device applies it and answers in its next uplink, now at SF7.
    phy = build_data_frame(
        2,
        addr,
        30 + adr.HISTORY,
        NWK,
        APP,
        f_port=1,
        payload=b"\x01\x67\x00\xe1",
        adr=True,
        fopts=b"\x03\x07",
    )
    fw.push_rxpk([rxpk(fw, phy, tmst=5, datr="SF7BW125", lsnr=-1.0)])
    deadline = time.monotonic() + 3
    while agent.counter("adr_outcome{outcome=accepted") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert agent.counter("adr_outcome{outcome=accepted") == 1
    assert fw.pull_resp(timeout_s=0.5) is None, "nothing more to say"
