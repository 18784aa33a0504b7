"""hil modem emulators through a real pty, driven like a host driver would with pyserial."""

from __future__ import annotations

import time
from pathlib import Path

import serial

from hil.modem import LoraE5, Rn2483, Rui3

W1 = bytes.fromhex("405a3c0b26802a00016a485fefd2eefc1bd02b37")


def _cmd(port: serial.Serial, line: str) -> str:
    port.write(line.encode() + b"\r\n")
    return port.readline().decode().rstrip("\r\n")


def _wait_listening(m: object) -> None:
    deadline = time.monotonic() + 2
    while not m.listening and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)


def test_rn2483_exchange_and_rearm(tmp_path: Path) -> None:
    with Rn2483(tmp_path) as m, serial.Serial(str(m.path), 57600, timeout=2) as port:
        assert _cmd(port, "sys reset").startswith("RN2483")
        assert _cmd(port, "mac pause") == "4294967245"
        for c in ("radio set mod lora", "radio set freq 868100000", "radio set wdt 0"):
            assert _cmd(port, c) == "ok"
        assert m.inject(W1, -71, 9) is False  # not armed yet: lost, like the real radio
        assert _cmd(port, "radio rx 0") == "ok"
        _wait_listening(m)
        assert m.inject(W1, -71, 9) is True
        assert port.readline() == b"radio_rx  " + W1.hex().upper().encode() + b"\r\n"
        assert m.inject(W1, -70, 8) is False  # idle until re-armed
        assert _cmd(port, "radio get snr") == "9"
        assert _cmd(port, "radio get rssi") == "-71"
        assert _cmd(port, "bogus") == "invalid_param"
    assert m.stats.delivered == 1 and m.stats.missed == 2


def test_rui3_event_line(tmp_path: Path) -> None:
    with Rui3(tmp_path) as m, serial.Serial(str(m.path), 115200, timeout=2) as port:
        assert _cmd(port, "AT+NWM=0") == "OK"
        assert _cmd(port, "AT+P2P=868100000:7:125:0:8:14") == "OK"
        assert _cmd(port, "AT+PRECV=65534") == "OK"
        _wait_listening(m)
        m.inject(W1, -108, -6)
        m.inject(W1, -71, 9)  # continuous: no re-arm needed
        assert port.readline() == b"+EVT:RXP2P:-108:-6:" + W1.hex().upper().encode() + b"\r\n"
        assert port.readline().startswith(b"+EVT:RXP2P:-71:9:")


def test_lora_e5_two_lines(tmp_path: Path) -> None:
    with LoraE5(tmp_path) as m, serial.Serial(str(m.path), 9600, timeout=2) as port:
        assert _cmd(port, "AT") == "+AT: OK"
        assert _cmd(port, "AT+MODE=TEST") == "+MODE: TEST"
        echo = _cmd(port, "AT+TEST=RFCFG,868.1,SF7,125,12,15,14,ON,OFF,ON")
        assert echo.startswith("+TEST: RFCFG F:868100000, SF7, BW125K") and "IQ:OFF" in echo
        assert _cmd(port, "AT+TEST=RXLRPKT") == "+TEST: RXLRPKT"
        _wait_listening(m)
        m.inject(W1, -71, 9)
        assert port.readline() == b"+TEST: LEN:20, RSSI:-71, SNR:9\r\n"
        assert port.readline() == b'+TEST: RX "' + W1.hex().upper().encode() + b'"\r\n'


def test_unplug_and_replug_keep_the_path(tmp_path: Path) -> None:
    m = Rn2483(tmp_path)
    m.plug()
    first = m.path.resolve()
    port = serial.Serial(str(m.path), 57600, timeout=0.5)
    assert _cmd(port, "radio rx 0") == "ok"
    m.unplug()
    assert not m.path.exists()
    try:
        port.write(b"radio rx 0\r\n")
        data = port.read(10)
        assert data == b""
    except (serial.SerialException, OSError):
        pass  # what pyserial raises when the device node vanished
    port.close()
    m.plug()
    try:
        assert m.path.exists() and m.listening is False  # the replugged modem lost its setup
        with serial.Serial(str(m.path), 57600, timeout=2) as p2:
            assert _cmd(p2, "sys reset").startswith("RN2483")
        assert m.stats.unplugs == 1 and first.name.isdigit()
    finally:
        m.close()
