"""A LoRa modem emulator on a real pty: answers the setup commands like the modem, emits packets.

Test helper (not a test module). The pty slave path, or a symlink to it, is the source's port.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import threading
import time
import tty
from pathlib import Path


class ModemEmulator:
    def __init__(
        self,
        dialect: str,
        link: Path | None = None,
        *,
        rssi_supported: bool = True,
        rui3_old: bool = False,
        echo: bool = False,
        rfcfg_override: str | None = None,
    ) -> None:
        self.dialect = dialect
        self.link = link
        self.rssi_supported = rssi_supported
        self.rui3_old = rui3_old
        self.echo = echo
        self.rfcfg_override = rfcfg_override
        self.commands: list[str] = []
        self.armed = threading.Event()
        self.setups = 0
        self._last = (0, 0)  # rssi, snr of the last packet (RN2483 answers them on request)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no CR/LF translation before pyserial configures it
        self.port = os.ttyname(self.slave)
        if link is not None:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.symlink_to(self.port)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.port

    # -- test controls ------------------------------------------------------------------

    def write_line(self, text: str | bytes) -> None:
        data = text if isinstance(text, bytes) else text.encode("ascii")
        with self._lock:
            os.write(self.master, data + b"\r\n")

    def wait_armed(self, timeout: float = 5.0) -> None:
        if not self.armed.wait(timeout):
            raise AssertionError(f"{self.dialect} modem never armed; got {self.commands}")

    def emit(self, hex_payload: str, rssi: int, snr: int, timeout: float = 5.0) -> None:
        """One received packet, written as that modem family writes it (SERIAL.md)."""
        self.wait_armed(timeout)
        self._last = (rssi, snr)
        if self.dialect == "rn2483":
            self.armed.clear()  # the radio is idle until the host sends `radio rx 0` again
            self.write_line(f"radio_rx  {hex_payload.upper()}")
        elif self.dialect == "rui3" and self.rui3_old:
            self.write_line(f"+EVT:RXP2P, RSSI {rssi}, SNR {snr}")
            self.write_line(f"+EVT:{hex_payload}")
        elif self.dialect == "rui3":
            self.write_line(f"+EVT:RXP2P:{rssi}:{snr}:{hex_payload}")
        else:
            self.write_line(f"+TEST: LEN:{len(hex_payload) // 2}, RSSI:{rssi}, SNR:{snr}")
            self.write_line(f'+TEST: RX "{hex_payload}"')

    def unplug(self) -> None:
        """USB unplug: the device node disappears and the modem loses its configuration."""
        self._stop.set()
        self._thread.join(2.0)
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    close = unplug

    # -- modem side ---------------------------------------------------------------------

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                time.sleep(0.05)
                continue
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("ascii", "replace")
                self.commands.append(line)
                if self.echo:
                    self.write_line(line)
                for answer in self._answer(line):
                    self.write_line(answer)

    def _answer(self, cmd: str) -> list[str]:
        return {"rn2483": self._rn2483, "rui3": self._rui3, "lora-e5": self._e5}[self.dialect](cmd)

    def _rn2483(self, cmd: str) -> list[str]:
        rssi, snr = self._last
        if cmd == "sys reset":
            self.armed.clear()
            return ["RN2483 1.0.5 Oct 31 2018 15:06:52"]
        if cmd == "mac pause":
            return ["4294967245"]
        if cmd.startswith("radio set "):
            self.setups += cmd == "radio set wdt 0"
            return ["ok"]
        if cmd == "radio rx 0":
            self.armed.set()
            return ["ok"]
        if cmd == "radio get snr":
            return [str(snr)]
        if cmd == "radio get rssi":
            return [str(rssi)] if self.rssi_supported else ["invalid_param"]
        return ["invalid_param"]

    def _rui3(self, cmd: str) -> list[str]:
        if cmd == "AT+PRECV=65534":
            self.setups += 1
            self.armed.set()
        if cmd.startswith("AT+"):
            return ["OK"]
        return ["AT_COMMAND_NOT_FOUND"]

    def _e5(self, cmd: str) -> list[str]:
        if cmd == "AT":
            return ["+AT: OK"]
        if cmd == "AT+MODE=TEST":
            return ["+MODE: TEST"]
        m = re.fullmatch(r"AT\+TEST=RFCFG,([\d.]+),SF(\d+),(\d+),(\d+),(\d+),(\d+),ON,OFF,ON", cmd)
        if m:
            if self.rfcfg_override is not None:
                return [self.rfcfg_override]
            hz = round(float(m[1]) * 1e6)
            return [
                f"+TEST: RFCFG F:{hz}, SF{m[2]}, BW{m[3]}K, TXPR:{m[4]}, RXPR:{m[5]}, "
                f"POW:{m[6]}dBm, CRC:ON, IQ:OFF, NET:ON"
            ]
        if cmd == "AT+TEST=RXLRPKT":
            self.setups += 1
            self.armed.set()
            return ["+TEST: RXLRPKT"]
        return ["+AT: ERROR(-1)"]
