"""#21 must-show 2: a downlink by object, end to end on the HIL's air. An OTAA device with a JS
codec that has `encodeDownlink` joins the real daemon through the simulated packet forwarder; an
object is queued through the daemon's control socket; the device's next uplink opens RX1, the
forwarder transmits the PULL_RESP at its tmst and the simulated device (the HIL's own LoRaWAN
stack, independent of the agent's) checks the MIC, decrypts the FRMPayload and reads exactly the
fPort and bytes `encodeDownlink` returned, which the codec's `decodeDownlink` turns back into the
object."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import decoders
from gateway_agent.control import request
from hil.forwarder import Downlink, PacketForwarder, RxMeta
from hil.lorawan_device import AirTx, DownlinkResult, LorawanDevice
from tests.agentproc import REPO, Agent

CODEC_FILE = REPO / "tests/fixtures/imports/ttnrepo/vendor/fife-sensors/room-co2.js"
CODEC = f"js:{CODEC_FILE}"
DEV_EUI, JOIN_EUI = "70b3d57ed0000501", "70b3d57ed0000500"
APP_KEY = "5a1b8e3c2d4f60718293a4b5c6d7e8f9"
GW = bytes.fromhex("b827ebfffe000501")


async def on_air(fwd: PacketForwarder, tx: AirTx) -> None:
    meta = RxMeta(tx.freq_hz, tx.sf, tx.bw_khz, rssi_dbm=-71, snr_db=8.5)
    assert fwd.push([fwd.rxpk(tx.phy, meta)]) is not None


async def next_downlink(got: asyncio.Queue[Downlink], timeout_s: float) -> Downlink:
    return await asyncio.wait_for(got.get(), timeout_s)


async def send_when_free(make: Callable[[float], AirTx | None], tries_s: float = 20.0) -> AirTx:
    """The device's duty cycle may hold a transmission back: try until it goes."""
    end = time.monotonic() + tries_s
    while time.monotonic() < end:
        tx = make(time.monotonic())
        if tx is not None:
            return tx
        await asyncio.sleep(0.2)
    raise AssertionError("the duty cycle never let the device transmit")


async def test_object_to_bytes_on_air_to_device(tmp_path: Path) -> None:
    dev = {"dev_eui": DEV_EUI, "name": "Hall", "class": "co2", "codec": CODEC,
           "join_eui": JOIN_EUI, "app_key": APP_KEY}  # fmt: skip
    agent = Agent(tmp_path / "agent", None, [dev])
    agent.start()
    got: asyncio.Queue[Downlink] = asyncio.Queue()
    fwd = PacketForwarder(GW, ("127.0.0.1", agent.udp_port), keepalive_s=1.0,
                          on_downlink=got.put_nowait)  # fmt: skip
    device = LorawanDevice(bytes.fromhex(DEV_EUI), join_eui=bytes.fromhex(JOIN_EUI),
                           app_key=bytes.fromhex(APP_KEY))  # fmt: skip
    await fwd.start()
    try:
        await asyncio.sleep(0.3)  # the PULL_DATA that gives the agent this gateway's route
        join = await send_when_free(device.join_request)
        await on_air(fwd, join)
        accept = await next_downlink(got, 10.0)  # RX1 of a join: 5 s
        assert device.on_downlink(accept.phy) == DownlinkResult("join_accept")

        # Queued through the real daemon's control socket, by object.
        obj = {"interval": 600, "led": True}
        ans = await asyncio.to_thread(
            request, agent.control, "downlink", dev_eui=DEV_EUI, object=obj
        )
        want_port, want_bytes = decoders.encode_downlink(CODEC, obj)  # the codec, run here
        assert (ans["f_port"], bytes.fromhex(ans["payload"])) == (want_port, want_bytes)
        assert (want_port, want_bytes) == (10, bytes([0x01, 0x02, 0x58, 0x02, 0x01]))

        up = await send_when_free(lambda now: device.uplink(now, 1, bytes([3, 44, 0, 215])))
        await on_air(fwd, up)
        dl = await next_downlink(got, 5.0)  # RX1: 1 s after the uplink
        assert dl.freq_hz == up.freq_hz and dl.ipol, "RX1 on the uplink's channel, inverted IQ"
        assert dl.datr == f"SF{up.sf}BW{up.bw_khz}"
        res = device.on_downlink(dl.phy)  # MIC checked, FRMPayload decrypted by the HIL stack
        assert res.kind == "data" and res.f_port == want_port and res.payload == want_bytes
        assert decoders.decode_downlink(CODEC, res.f_port, res.payload) == obj
        assert device.stats.bad_downlinks == 0
    finally:
        await fwd.close()
        assert agent.stop() == 0
    assert APP_KEY not in agent.log()
