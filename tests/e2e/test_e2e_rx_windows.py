"""End to end (issue 3): class-A downlinks reach their receive window with the daemon's
default settings (a 2 s commit window), and fall back to RX2 when RX1 is refused.

The gateway is hil's packet-forwarder emulator: a free-running tmst counter, and TOO_LATE for a
PULL_RESP that arrives less than 30 ms before its tmst, like lora_pkt_fwd's JIT queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.broker import Mosquitto
from hil.forwarder import Downlink, PacketForwarder, RxMeta
from hil.lorawan_crypto import build_data_frame, build_join_request, open_join_accept
from tests.agentproc import Agent, Forwarder
from tests.e2e.test_e2e_radio import (
    ABP_ADDR,
    ABP_EUI,
    APP,
    APP_KEY,
    DEV_EUI,
    JOIN_EUI,
    NWK,
    abp_device,
    otaa_device,
    rxpk,
)

GW = bytes.fromhex("b827ebfffe00a001")
MASK = 0xFFFFFFFF
# The shipped defaults (config.py): what an installer gets without tuning anything.
DEFAULTS = {"store": {"commit_interval_ms": 2000}, "lorawan": {"dedup_window_ms": 200}}


async def until(cond: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
def agent(tmp_path: Path, broker: Mosquitto):  # type: ignore[no-untyped-def]
    a = Agent(tmp_path / "a", broker.port, [otaa_device(), abp_device()], extra=DEFAULTS)
    a.start()
    yield a
    a.kill()
    print(a.log()[-5000:])


async def _gateway(agent: Agent, got: list[Downlink]) -> PacketForwarder:
    fw = PacketForwarder(GW, ("127.0.0.1", agent.udp_port), on_downlink=got.append)
    await fw.start()
    await until(lambda: fw.stats.pull_acked >= 1, 5)  # the downlink route is open
    return fw


async def test_confirmed_ack_in_rx1_with_the_default_commit_window(agent: Agent) -> None:
    got: list[Downlink] = []
    fw = await _gateway(agent, got)
    try:
        phy = build_data_frame(
            4, bytes.fromhex(ABP_ADDR), 7, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe1"
        )
        item = fw.rxpk(phy, RxMeta(868_300_000, 7, 125, -80, 5.0))
        fw.push([item])
        await until(lambda: fw.stats.pull_resp >= 1, 3)
        await until(lambda: got, 3)  # on air at its tmst
        assert fw.stats.tx_too_late == 0, "the ACK made RX1: the commit did not wait 2 s"
        assert got[0].tmst == (item["tmst"] + 1_000_000) & MASK
        assert got[0].freq_hz == 868_300_000 and got[0].datr == "SF7BW125"
        assert got[0].phy[0] == 0x60 and got[0].phy[5] & 0x20, "UnconfirmedDataDown, ACK"
        assert agent.counter("readings_accepted") == 1
    finally:
        await fw.close()


async def test_join_accept_in_rx1_with_the_default_commit_window(agent: Agent) -> None:
    got: list[Downlink] = []
    fw = await _gateway(agent, got)
    try:
        jr = build_join_request(JOIN_EUI, DEV_EUI, 77, APP_KEY)
        item = fw.rxpk(jr, RxMeta(868_500_000, 10, 125, -90, 2.0))
        fw.push([item])
        await until(lambda: fw.stats.tx_ok >= 1, 4)
        assert fw.stats.tx_too_late == 0
        await until(lambda: got, 7)
        assert got[0].tmst == (item["tmst"] + 5_000_000) & MASK
        assert len(open_join_accept(got[0].phy, APP_KEY).dev_addr) == 4, "opens with the AppKey"
    finally:
        await fw.close()


def test_rx1_refused_too_late_goes_out_in_rx2(agent: Agent) -> None:
    """TX_ACK TOO_LATE for the RX1 PULL_RESP: the same frame again for RX2 (tmst + 2 s,
    869.525 MHz, DR0 = SF12BW125), which the device still listens for."""
    fw = Forwarder(agent.udp_port)
    fw.open_downlink()
    phy = build_data_frame(
        4, bytes.fromhex(ABP_ADDR), 9, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe2"
    )
    fw.push_rxpk([rxpk(fw, phy, tmst=3_000_000_000, freq=868.1, datr="SF9BW125")])
    rx1 = fw.pull_resp(timeout_s=3, ack=False)
    assert rx1 is not None and rx1["tmst"] == 3_001_000_000 and rx1["datr"] == "SF9BW125"
    fw.tx_ack_error("TOO_LATE")
    rx2 = fw.pull_resp(timeout_s=2, ack=True)
    assert rx2 is not None, "RX2 fallback after TOO_LATE"
    assert rx2["tmst"] == 3_002_000_000
    assert rx2["freq"] == 869.525 and rx2["datr"] == "SF12BW125"
    assert rx2["_phy"] == rx1["_phy"], "the same frame (same FCntDown) in the next window"
    assert agent.counter("downlink_fallback{purpose=ack,reason=refused,window=rx2") == 1
    # Refused again (RX2 too): nothing more to try; counted, no third PULL_RESP.
    phy = build_data_frame(
        4, bytes.fromhex(ABP_ADDR), 10, NWK, APP, f_port=1, payload=b"\x01\x67\x00\xe3"
    )
    fw.push_rxpk([rxpk(fw, phy, tmst=3_100_000_000, freq=868.1, datr="SF9BW125")])
    assert fw.pull_resp(timeout_s=3, ack=False) is not None
    fw.tx_ack_error("TOO_LATE")
    assert fw.pull_resp(timeout_s=2, ack=False) is not None  # RX2
    fw.tx_ack_error("TOO_LATE")
    assert fw.pull_resp(timeout_s=1.5, ack=False) is None
    assert agent.counter("downlink_missed{purpose=ack,reason=refused") == 1
    assert ABP_EUI  # the ABP device of test_e2e_radio
