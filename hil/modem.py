"""Serial LoRa modem emulators over a pty (SERIAL.md): rn2483, rui3, lora-e5. The agent opens
`path` (a stable symlink to the pty slave, so an unplug/replug keeps the device name)."""

from __future__ import annotations

import os
import select
import tempfile
import threading
import tty
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True)
class ModemStats:
    commands: int = 0
    delivered: int = 0
    missed: int = 0  # packets that arrived while the radio was not listening
    unplugs: int = 0


class ModemEmulator:
    """Base: a pty, a reader thread answering commands, `inject()` for received packets."""

    dialect = ""

    def __init__(self, workdir: str | Path | None = None, name: str = "ttyHIL0") -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="hil-modem-"))
        self.path = self.dir / name
        self.lock = threading.Lock()
        self.stats = ModemStats()
        self.master: int | None = None
        self.slave: int | None = None
        self.thread: threading.Thread | None = None
        self.listening = False
        self.last_rssi = 0
        self.last_snr = 0
        self.commands: list[str] = []

    # -- lifecycle ------------------------------------------------------------------------

    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        self.master, self.slave = master, slave
        self.listening = False  # powered up: configuration lost
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.path)
        self.thread = threading.Thread(target=self._reader, args=(master,), daemon=True)
        self.thread.start()

    def unplug(self) -> None:
        """Like pulling the USB cable: the device node's other end goes away."""
        with self.lock:
            fds, self.master, self.slave = (self.master, self.slave), None, None
            self.listening = False
        for fd in fds:
            if fd is not None:
                os.close(fd)
        if self.thread is not None:
            self.thread.join(2)
        self.path.unlink(missing_ok=True)
        self.stats.unplugs += 1

    def close(self) -> None:
        if self.master is not None:
            self.unplug()

    def __enter__(self) -> ModemEmulator:
        self.plug()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- IO ---------------------------------------------------------------------------------

    def write_line(self, line: str) -> None:
        with self.lock:
            if self.master is None:
                return
            try:
                os.write(self.master, line.encode("ascii") + b"\r\n")
            except OSError:
                pass

    def _reader(self, fd: int) -> None:
        buf = b""
        while True:
            try:
                r, _, _ = select.select([fd], [], [], 0.2)
                if self.master != fd:
                    return
                if not r:
                    continue
                chunk = os.read(fd, 1024)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("ascii", "replace").strip()
                if line:
                    self.stats.commands += 1
                    self.commands.append(line)
                    self.handle(line)

    def handle(self, line: str) -> None:
        raise NotImplementedError

    def inject(self, phy: bytes, rssi: int, snr: int) -> bool:
        """A packet reaches the antenna. False when the modem was not listening (lost)."""
        with self.lock:
            ok = self.master is not None and self.listening
        if not ok:
            self.stats.missed += 1
            return False
        self.last_rssi, self.last_snr = rssi, snr
        self.emit(phy, rssi, snr)
        self.stats.delivered += 1
        return True

    def emit(self, phy: bytes, rssi: int, snr: int) -> None:
        raise NotImplementedError

    def garbage(self, line: str) -> None:
        self.write_line(line)


class Rn2483(ModemEmulator):
    """Microchip RN2483: `radio rx 0` arms one reception; after `radio_rx` it must be re-armed."""

    dialect = "rn2483"

    def handle(self, line: str) -> None:
        words = line.split()
        if line == "sys reset":
            self.listening = False
            self.write_line("RN2483 1.0.5 Oct 31 2018 15:06:52")
        elif line == "mac pause":
            self.write_line("4294967245")
        elif line == "radio get snr":
            self.write_line(str(self.last_snr))
        elif line == "radio get rssi":
            self.write_line(str(self.last_rssi))
        elif words[:2] == ["radio", "rx"]:
            self.listening = True
            self.write_line("ok")
        elif (
            words[:2] == ["radio", "set"]
            and len(words) == 4
            or words[:2] == ["mac", "set"]
            or line == "sys get ver"
        ):
            self.write_line("ok")
        else:
            self.write_line("invalid_param")

    def emit(self, phy: bytes, rssi: int, snr: int) -> None:
        self.listening = False  # idle until the host re-arms with `radio rx 0`
        self.write_line("radio_rx  " + phy.hex().upper())


class Rui3(ModemEmulator):
    """RAKwireless RUI3 in P2P mode: `+EVT:RXP2P:<rssi>:<snr>:<HEX>`, continuous after PRECV."""

    dialect = "rui3"

    def handle(self, line: str) -> None:
        upper = line.upper()
        if upper.startswith("AT+PRECV="):
            self.listening = upper.split("=", 1)[1] != "0"
            self.write_line("OK")
        elif upper.startswith("AT+NWM="):
            self.listening = False
            self.write_line("OK")
        elif upper.startswith("AT"):
            self.write_line("OK")
        else:
            self.write_line("AT_ERROR")

    def emit(self, phy: bytes, rssi: int, snr: int) -> None:
        self.write_line(f"+EVT:RXP2P:{rssi}:{snr}:{phy.hex().upper()}")


class LoraE5(ModemEmulator):
    """Seeed LoRa-E5 TEST mode: two lines per packet (LEN/RSSI/SNR, then RX "<HEX>")."""

    dialect = "lora-e5"

    def handle(self, line: str) -> None:
        upper = line.upper()
        if upper == "AT":
            self.write_line("+AT: OK")
        elif upper.startswith("AT+MODE="):
            self.write_line("+MODE: " + line.split("=", 1)[1].upper())
        elif upper.startswith("AT+TEST=RFCFG,"):
            a = line.split(",")[1:]
            if len(a) < 9:
                self.write_line("+TEST: ERROR(-1)")
                return
            freq = round(float(a[0]) * 1e6)
            self.write_line(
                f"+TEST: RFCFG F:{freq}, {a[1].upper()}, BW{a[2]}K, TXPR:{a[3]}, RXPR:{a[4]}, "
                f"POW:{a[5]}dBm, CRC:{a[6].upper()}, IQ:{a[7].upper()}, NET:{a[8].upper()}"
            )
        elif upper == "AT+TEST=RXLRPKT":
            self.listening = True
            self.write_line("+TEST: RXLRPKT")
        elif upper == "AT+TEST=STOP":
            self.listening = False
            self.write_line("+TEST: STOP")
        else:
            self.write_line("+AT: ERROR(-1)")

    def emit(self, phy: bytes, rssi: int, snr: int) -> None:
        self.write_line(f"+TEST: LEN:{len(phy)}, RSSI:{rssi}, SNR:{snr}")
        self.write_line(f'+TEST: RX "{phy.hex().upper()}"')


MODEMS: dict[str, type[ModemEmulator]] = {m.dialect: m for m in (Rn2483, Rui3, LoraE5)}
