"""Serial source against a modem emulator on a real pty: setup, frames, garbage, unplug/replug."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway_agent.config import SerialSourceConfig
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame
from gateway_agent.metrics import Counters
from gateway_agent.sources import SOURCE_TYPES, Source
from gateway_agent.sources.serial import SerialSource
from tests.serial_modem import ModemEmulator

W1_HEX = "405A3C0B26802A00016A485FEFD2EEFC1BD02B37"
W3_HEX = "405A3C0B26002C000045E97B37F25B6D35"
TIMEOUT = 8.0
BAUD = {"rn2483": 57600, "rui3": 115200, "lora-e5": 9600}

RN_SETUP = [
    "sys reset",
    "mac pause",
    "radio set mod lora",
    "radio set freq 868100000",
    "radio set sf sf7",
    "radio set bw 125",
    "radio set cr 4/5",
    "radio set crc on",
    "radio set iqi off",
    "radio set sync 34",
    "radio set prlen 8",
    "radio set wdt 0",
    "radio rx 0",
]
EXPECTED_SETUP = {
    "rn2483": RN_SETUP,
    "rui3": [
        "AT+NWM=0",
        "AT+P2P=868100000:7:125:0:8:14",
        "AT+SYNCWORD=3444",
        "AT+IQINVER=0",
        "AT+PRECV=65534",
    ],
    "lora-e5": [
        "AT",
        "AT+MODE=TEST",
        "AT+TEST=RFCFG,868.1,SF7,125,12,15,14,ON,OFF,ON",
        "AT+TEST=RXLRPKT",
    ],
}


class Running:
    def __init__(self, fmt: str, port: str, qsize: int = 100) -> None:
        self.counters = Counters()
        self.cfg = SerialSourceConfig(
            port=port, format=fmt, baudrate=BAUD[fmt], name="ser-test", reopen_max_s=0.5
        )
        self.src = SerialSource(self.cfg, self.counters)
        self.out: asyncio.Queue[RadioFrame] = asyncio.Queue(maxsize=qsize)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.create_task(self.src.run(self.out, self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, TIMEOUT)

    async def frame(self) -> RadioFrame:
        return await asyncio.wait_for(self.out.get(), TIMEOUT)


async def until(cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)


async def emit(emu: ModemEmulator, hex_payload: str, rssi: int, snr: int) -> None:
    await asyncio.to_thread(emu.emit, hex_payload, rssi, snr)


def test_registered_factory_and_uplink_only() -> None:
    cfg = SerialSourceConfig(port="/dev/ttyUSB9", format="rn2483", baudrate=57600)
    src = SOURCE_TYPES["serial"](cfg, Counters())
    assert isinstance(src, Source)
    assert src.name == "serial:/dev/ttyUSB9"
    assert not src.can_downlink("serial:/dev/ttyUSB9")
    tx = DownlinkTx("serial:/dev/ttyUSB9", bytes(12), 868_100_000, 7, 125, tmst=1)
    assert src.send_downlink(tx) is False


@pytest.mark.parametrize("fmt", ["rn2483", "rui3", "lora-e5"])
async def test_setup_and_frames_for_every_dialect(fmt: str) -> None:
    emu = ModemEmulator(fmt, echo=fmt == "rui3")
    try:
        async with Running(fmt, emu.path) as r:
            await emit(emu, W1_HEX, -71, 9)
            f1 = await r.frame()
            await emit(emu, W3_HEX, -108, -6)
            f2 = await r.frame()
            assert f1.phy_payload == bytes.fromhex(W1_HEX)
            assert f2.phy_payload == bytes.fromhex(W3_HEX)
            assert (f1.rx.rssi_dbm, f1.rx.snr_db) == (-71, 9)
            assert (f2.rx.rssi_dbm, f2.rx.snr_db) == (-108, -6)
            rx = f1.rx
            assert rx.gateway_id == f"serial:{emu.path}"
            assert (rx.freq_hz, rx.sf, rx.bw_khz, rx.code_rate, rx.tmst) == (
                868_100_000,
                7,
                125,
                "4/5",
                None,
            )
            assert rx.source == "ser-test"
            assert rx.rx_wall > 1.7e9
            assert emu.commands[: len(EXPECTED_SETUP[fmt])] == EXPECTED_SETUP[fmt]
            if fmt == "rn2483":  # read the signal, then re-arm, after every packet
                tail = emu.commands[len(RN_SETUP) :]
                assert tail[:3] == ["radio get snr", "radio get rssi", "radio rx 0"]
            assert r.counters.get("frames_received", source="ser-test") == 2
            st = r.src.stats()["gateways"][f"serial:{emu.path}"]
            assert st["receiving"] is True
            assert st["rx_ok"] == 2
    finally:
        emu.close()


async def test_rn2483_old_firmware_reports_unknown_rssi() -> None:
    emu = ModemEmulator("rn2483", rssi_supported=False)
    try:
        async with Running("rn2483", emu.path) as r:
            await emit(emu, W1_HEX, -71, 9)
            f = await r.frame()
            assert (f.rx.rssi_dbm, f.rx.snr_db) == (None, 9)
    finally:
        emu.close()


async def test_rui3_old_two_line_format() -> None:
    emu = ModemEmulator("rui3", rui3_old=True)
    try:
        async with Running("rui3", emu.path) as r:
            await emit(emu, W3_HEX, -108, -6)
            f = await r.frame()
            assert (f.phy_payload.hex(), f.rx.rssi_dbm, f.rx.snr_db) == (W3_HEX.lower(), -108, -6)
    finally:
        emu.close()


@pytest.mark.parametrize("fmt", ["rn2483", "lora-e5"])
async def test_garbage_is_counted_and_survived(fmt: str) -> None:
    emu = ModemEmulator(fmt)
    try:
        async with Running(fmt, emu.path) as r:
            await asyncio.to_thread(emu.wait_armed)
            await until(lambda: r.src.receiving)
            junk = [
                b"hello modem",
                b"\xff\xfe\x00\x01",
                b"x" * 5000,  # over-long line: discarded
                b'+TEST: RX "40ZZ"' if fmt == "lora-e5" else b"radio_rx  40ZZ",
                b'+TEST: RX "4001"' if fmt == "lora-e5" else b"radio_rx  4001",
            ]
            for j in junk:
                await asyncio.to_thread(emu.write_line, j)
            await until(lambda: r.counters.get("bad_input", source="ser-test") >= len(junk))
            await emit(emu, W1_HEX, -71, 9)
            f = await r.frame()
            assert f.phy_payload == bytes.fromhex(W1_HEX)
            assert r.counters.get("bad_input", reason="serial_bad_line") >= len(junk)
            assert r.counters.get("internal_error") == 0
    finally:
        emu.close()


@pytest.mark.parametrize("fmt", ["rn2483", "rui3", "lora-e5"])
async def test_unplug_replug_reruns_setup(fmt: str, tmp_path: Path) -> None:
    link = tmp_path / "ttyLORA"
    emu = ModemEmulator(fmt, link)
    emu2: ModemEmulator | None = None
    try:
        async with Running(fmt, str(link)) as r:
            await emit(emu, W1_HEX, -71, 9)
            assert (await r.frame()).rx.gateway_id == f"serial:{link}"
            emu.unplug()
            await until(lambda: not r.src.connected)
            await asyncio.sleep(0.3)  # a few failed reopen attempts while the node is gone
            assert r.counters.get("serial_open_failed") >= 1
            emu2 = ModemEmulator(fmt, link)
            await emit(emu2, W3_HEX, -108, -6)
            f = await r.frame()
            assert (f.phy_payload, f.rx.rssi_dbm, f.rx.snr_db) == (bytes.fromhex(W3_HEX), -108, -6)
            assert emu2.commands[: len(EXPECTED_SETUP[fmt])] == EXPECTED_SETUP[fmt]
            assert emu2.setups == 1
            st = r.src.stats()
            assert st["gateways"][f"serial:{link}"]["setups"] == 2
            assert r.src.opens >= 2
            assert r.counters.get("serial_lost") == 1
    finally:
        emu.close()
        if emu2 is not None:
            emu2.close()


async def test_setup_failure_retries_with_backoff() -> None:
    emu = ModemEmulator("lora-e5", rfcfg_override="+TEST: RFCFG F:868300000, SF12, BW125K")
    try:
        async with Running("lora-e5", emu.path) as r:
            await until(lambda: r.counters.get("serial_setup_failed") >= 2)
            assert not r.src.receiving
            assert r.src.opens >= 2
            emu.rfcfg_override = None  # the modem behaves again: setup completes
            await emit(emu, W1_HEX, -71, 9)
            assert (await r.frame()).rx.snr_db == 9
    finally:
        emu.close()


async def test_missing_port_never_exits_and_stops_promptly(tmp_path: Path) -> None:
    async with Running("rui3", str(tmp_path / "nothing-here")) as r:
        await until(lambda: r.counters.get("serial_open_failed") >= 2)
        assert r.task is not None
        assert not r.task.done()
    assert r.src.stats()["gateways"][f"serial:{tmp_path / 'nothing-here'}"]["connected"] is False


async def test_full_queue_drops_and_counts() -> None:
    emu = ModemEmulator("rui3")
    try:
        async with Running("rui3", emu.path, qsize=1) as r:
            for _ in range(3):
                await emit(emu, W1_HEX, -71, 9)
            await until(lambda: r.counters.get("frames_dropped", reason="queue_full") == 2)
            assert r.out.qsize() == 1
    finally:
        emu.close()
