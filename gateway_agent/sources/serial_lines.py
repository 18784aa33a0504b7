"""Serial LoRa modem dialects (RN2483, RUI3, LoRa-E5): per-family line parsing and setup. Pure.

Each dialect is a `ModemSession` (serial_session.py) registered by its config `format` name;
facts from protocols/SERIAL.md (section numbers below refer to it).
"""

from __future__ import annotations

import re

from gateway_agent.errors import SerialLineError
from gateway_agent.sources.serial_session import (
    CODE_RATES,
    DIALECTS,
    MAX_LINE,
    RESPONSE_TIMEOUT_S,
    LineBuffer,
    ModemSession,
    Packet,
    ParsedEvent,
    RadioSettings,
    SetupDone,
    SetupFailed,
    Step,
    dialect,
    parse_int,
    parse_payload_hex,
)

__all__ = [
    "DIALECTS",
    "MAX_LINE",
    "LineBuffer",
    "LoraE5Session",
    "ModemSession",
    "Packet",
    "ParsedEvent",
    "RadioSettings",
    "Rn2483Session",
    "Rui3Session",
    "SetupDone",
    "SetupFailed",
    "new_session",
    "parse_payload_hex",
]

SIGNAL_TIMEOUT_S = 1.0  # RN2483: waiting for `radio get snr/rssi` answers
REARM_DELAY_S = 0.2  # RN2483: after `busy`, try `radio rx 0` again


def _ok(word: str) -> re.Pattern[str]:
    return re.compile(rf"^{word}$")


@dialect("rn2483")
class Rn2483Session(ModemSession):
    """Section 3: radio commands after `mac pause`; re-arm after every radio_rx / radio_err."""

    error_line = re.compile(r"^(invalid_param|busy|err|denied|radio_err)$")
    _rx = re.compile(r"^radio_rx\s+(\S*)$")

    def steps(self) -> list[Step]:
        r = self.radio
        ok = _ok("ok")
        return [
            Step("sys reset", re.compile(r"^RN\d{4}"), optional=True, timeout_s=3.0),
            Step("mac pause", re.compile(r"^\d+$")),
            *(
                Step(f"radio set {arg}", ok)
                for arg in (
                    "mod lora",
                    f"freq {r.freq_hz}",
                    f"sf sf{r.sf}",
                    f"bw {r.bw_khz}",
                    f"cr {r.code_rate}",
                    "crc on",
                    "iqi off",
                    "sync 34",  # public LoRaWAN sync word (section 1)
                    "prlen 8",
                    "wdt 0",  # else a radio_err every 15 s
                )
            ),
            Step("radio rx 0", ok),
        ]

    def _reset_runtime(self) -> None:
        self._state = "listening"
        self._pending: tuple[bytes, float] | None = None
        self._snr: int | None = None

    def _arm(self, now: float) -> None:
        self._send("radio rx 0")
        self._state = "wait_rx_ok"
        self._deadline = now + RESPONSE_TIMEOUT_S

    def _finish(self, rssi: int | None, now: float) -> Packet | None:
        pending, snr = self._pending, self._snr
        self._pending, self._snr = None, None
        self._arm(now)
        return Packet(pending[0], rssi, snr, pending[1]) if pending else None

    def _event(self, line: str, now: float) -> tuple[bool, ParsedEvent | None]:
        if line.startswith("radio_rx"):
            prev, self._pending, self._snr = self._pending, None, None
            m = self._rx.match(line)
            try:
                payload = parse_payload_hex(m[1] if m else "")
            except SerialLineError:
                if self.receiving:
                    self._arm(now)  # the radio is idle after any radio_rx line
                raise
            if not self.receiving:
                return True, Packet(payload, None, None, now)
            # Read the signal of this packet first, re-arm after (section 3).
            self._pending = (payload, now)
            self._send("radio get snr")
            self._state = "wait_snr"
            self._deadline = now + SIGNAL_TIMEOUT_S
            # Another radio_rx before the answers: the earlier packet goes out without signal.
            return True, Packet(prev[0], None, None, prev[1]) if prev else None
        if line == "radio_err" and self.receiving:
            if self._state in ("listening", "wait_rx_ok"):
                self._arm(now)
            return True, None
        return False, None

    def _runtime_line(self, line: str, now: float) -> ParsedEvent | None:
        if self._state == "wait_snr":
            if line == "invalid_param":
                self._snr = None
            else:
                self._snr = parse_int(line)
            self._send("radio get rssi")
            self._state = "wait_rssi"
            self._deadline = now + SIGNAL_TIMEOUT_S
            return None
        if self._state == "wait_rssi":
            # Firmware before 1.0.5 has no `radio get rssi`: report it as unknown.
            return self._finish(None if line == "invalid_param" else parse_int(line), now)
        if self._state == "wait_rx_ok":
            if line == "ok":
                self._state = "listening"
                self._deadline = None
                return None
            if line in ("busy", "invalid_param"):
                self._state = "rearm"
                self._deadline = now + REARM_DELAY_S
                return None
        raise SerialLineError(f"unexpected line {line[:40]!r}")

    def _runtime_timeout(self, now: float) -> ParsedEvent | None:
        if self._state in ("wait_snr", "wait_rssi"):
            return self._finish(None, now)
        self._arm(now)  # wait_rx_ok without an answer, or the delayed re-arm after `busy`
        return None


class _PairingSession(ModemSession):
    """Two-line receive formats: a metadata line, then the payload line."""

    def _reset_runtime(self) -> None:
        self._meta: tuple[int | None, int, int, float] | None = None  # len, rssi, snr, time

    def _drop_meta(self) -> None:
        if self._meta is not None:
            self._meta = None
            self._errors.append(SerialLineError("metadata line without its payload line"))

    def _paired(self, hex_text: str, now: float) -> Packet:
        meta, self._meta = self._meta, None
        payload = parse_payload_hex(hex_text)
        if meta is None:
            return Packet(payload, None, None, now)
        length, rssi, snr, t = meta
        if length is not None and length != len(payload):
            raise SerialLineError(f"LEN {length} but {len(payload)} bytes")
        return Packet(payload, rssi, snr, t)


@dialect("rui3")
class Rui3Session(_PairingSession):
    """Section 4: `+EVT:RXP2P:<rssi>:<snr>:<HEX>`, or the old two-line form."""

    error_line = re.compile(r"^(AT_[A-Z_]+|ERROR.*|\+CME ERROR.*)$")
    _old_meta = re.compile(r"^\+EVT:RXP2P,\s*RSSI\s*(-?\d+),\s*SNR\s*(-?\d+)$")
    _old_data = re.compile(r"^\+EVT:([0-9A-Fa-f]+)$")

    def steps(self) -> list[Step]:
        r = self.radio
        ok = _ok("OK")
        cr = CODE_RATES.index(r.code_rate)
        return [
            Step("AT+NWM=0", ok, optional=True, timeout_s=5.0),  # may reboot without an OK
            Step(f"AT+P2P={r.freq_hz}:{r.sf}:{r.bw_khz}:{cr}:8:14", ok),
            Step("AT+SYNCWORD=3444", ok),  # public sync word on SX126x; never trust the default
            Step("AT+IQINVER=0", ok),
            Step("AT+PRECV=65534", ok),
        ]

    def _event(self, line: str, now: float) -> tuple[bool, ParsedEvent | None]:
        if not line.startswith("+EVT:"):
            self._drop_meta()
            return False, None
        if self._meta is not None and not self._old_data.match(line):
            self._drop_meta()
        if line.startswith("+EVT:RXP2P:"):
            parts = line.split(":")
            if len(parts) not in (5, 6):
                raise SerialLineError(f"RXP2P with {len(parts)} fields")
            rssi, snr = parse_int(parts[2]), parse_int(parts[3])
            payload = parse_payload_hex(parts[-1])
            if len(parts) == 6 and parse_int(parts[4]) != len(payload):
                raise SerialLineError("RXP2P length field does not match the payload")
            return True, Packet(payload, rssi, snr, now)
        if m := self._old_meta.match(line):
            self._meta = (None, int(m[1]), int(m[2]), now)
            return True, None
        if m := self._old_data.match(line):
            return True, self._paired(m[1], now)
        if "RECEIVE TIMEOUT" in line and self.receiving:
            self._send("AT+PRECV=65534")  # a timed window closed: listen again
            return True, None
        if line.startswith(("+EVT:TXP2P", "+EVT:RXP2P RECEIVE")):
            return True, None
        raise SerialLineError(f"unknown event {line[:40]!r}")

    def _runtime_line(self, line: str, now: float) -> ParsedEvent | None:
        if line == "OK" or line.startswith("AT") or self.error_line.match(line):
            return None  # echoes and answers to our own re-arm
        raise SerialLineError(f"unexpected line {line[:40]!r}")


@dialect("lora-e5")
class LoraE5Session(_PairingSession):
    """Section 5: AT+MODE=TEST, RFCFG (echo checked), RXLRPKT; LEN line + RX line per packet."""

    error_line = re.compile(r"^(\+[A-Z]+: ?ERROR.*|ERROR.*)$")
    _len = re.compile(r"^\+TEST: ?LEN:\s*(\d+),\s*RSSI:\s*(-?\d+),\s*SNR:\s*(-?\d+)$")
    _rx = re.compile(r'^\+TEST: ?RX "([^"]*)"$')
    _cfg = re.compile(r"F:\s*(\d+),\s*SF(\d+),\s*BW(\d+)K.*CRC:\s*ON.*IQ:\s*OFF.*NET:\s*ON")

    def _rfcfg_ok(self, line: str) -> bool:
        m = self._cfg.search(line)
        r = self.radio
        return m is not None and (int(m[1]), int(m[2]), int(m[3])) == (r.freq_hz, r.sf, r.bw_khz)

    def steps(self) -> list[Step]:
        r = self.radio
        mhz = f"{r.freq_hz / 1e6:.6f}".rstrip("0").rstrip(".")
        return [
            Step("AT", re.compile(r"^\+AT: ?OK")),
            Step("AT+MODE=TEST", re.compile(r"^\+MODE: ?TEST")),
            Step(
                f"AT+TEST=RFCFG,{mhz},SF{r.sf},{r.bw_khz},12,15,14,ON,OFF,ON",
                re.compile(r"^\+TEST: ?RFCFG"),
                check=self._rfcfg_ok,
            ),
            Step("AT+TEST=RXLRPKT", re.compile(r"^\+TEST: ?RXLRPKT")),
        ]

    def _event(self, line: str, now: float) -> tuple[bool, ParsedEvent | None]:
        if m := self._len.match(line):
            self._drop_meta()
            self._meta = (int(m[1]), int(m[2]), int(m[3]), now)
            return True, None
        if m := self._rx.match(line):
            return True, self._paired(m[1], now)
        self._drop_meta()  # a LEN line followed by anything else (section 5)
        return False, None

    def _runtime_line(self, line: str, now: float) -> ParsedEvent | None:
        if line.startswith("+TEST: RXLRPKT"):
            return None
        raise SerialLineError(f"unexpected line {line[:40]!r}")


def new_session(fmt: str, radio: RadioSettings) -> ModemSession:
    try:
        return DIALECTS[fmt](radio)
    except KeyError:
        raise ValueError(f"unknown serial format {fmt!r}") from None
