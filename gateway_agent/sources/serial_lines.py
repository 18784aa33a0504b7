"""Serial LoRa modem dialects (RN2483, RUI3, LoRa-E5) as sans-IO state machines. Pure: no IO.

The shell writes `take_writes()`, feeds every received line to `feed(line, now)` and calls
`tick(now)` regularly; facts from protocols/SERIAL.md (section numbers below refer to it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gateway_agent.errors import SerialLineError

MAX_LINE = 1024  # longest legitimate line is ~540 characters (section 2)
MIN_PHY, MAX_PHY = 12, 255
RESPONSE_TIMEOUT_S = 2.0
SIGNAL_TIMEOUT_S = 1.0  # RN2483: waiting for `radio get snr/rssi` answers
REARM_DELAY_S = 0.2  # RN2483: after `busy`, try `radio rx 0` again
CODE_RATES = ("4/5", "4/6", "4/7", "4/8")

_HEX = re.compile(r"[0-9A-Fa-f]*")
_INT = re.compile(r"-?\d{1,4}")


@dataclass(frozen=True, slots=True)
class RadioSettings:
    freq_hz: int = 868_100_000
    sf: int = 7
    bw_khz: int = 125
    code_rate: str = "4/5"


@dataclass(frozen=True, slots=True)
class Packet:
    payload: bytes
    rssi_dbm: int | None
    snr_db: int | None
    rx_time: float  # the `now` passed with the line that carried the packet (monotonic)


@dataclass(frozen=True, slots=True)
class SetupDone:
    dialect: str


@dataclass(frozen=True, slots=True)
class SetupFailed:
    command: str
    answer: str  # the offending line, or "timeout"


ParsedEvent = Packet | SetupDone | SetupFailed


class LineBuffer:
    """Bytes -> lines: split on LF, strip CR, ASCII with replacement, discard over-long lines."""

    def __init__(self, cap: int = MAX_LINE) -> None:
        self.cap = cap
        self._buf = bytearray()
        self._discarding = False
        self.overflows = 0

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        self._buf += data
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                break
            raw = bytes(self._buf[:i])
            del self._buf[: i + 1]
            if self._discarding:
                self._discarding = False  # the tail of an over-long line
                continue
            if len(raw) > self.cap:
                self.overflows += 1
                continue
            lines.append(raw.rstrip(b"\r").decode("ascii", errors="replace"))
        if len(self._buf) > self.cap:
            self.overflows += 1
            self._buf.clear()
            self._discarding = True
        return lines


def parse_payload_hex(text: str) -> bytes:
    """Hex digits only, even length, 12..255 bytes, any case (section 2)."""
    if not text or len(text) % 2 or not _HEX.fullmatch(text):
        raise SerialLineError(f"not an even-length hex payload ({len(text)} chars)")
    if not MIN_PHY <= len(text) // 2 <= MAX_PHY:
        raise SerialLineError(f"payload of {len(text) // 2} bytes")
    return bytes.fromhex(text)


def _int(text: str) -> int:
    if not _INT.fullmatch(text):
        raise SerialLineError(f"not an integer: {text[:20]!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class Step:
    command: str
    ok: re.Pattern[str]
    optional: bool = False  # no answer in time -> carry on (e.g. a reset that prints nothing)
    timeout_s: float = RESPONSE_TIMEOUT_S
    check: Callable[[str], bool] | None = None  # extra check on the accepted answer


class ModemSession:
    """Common engine: setup sequence, unsolicited receive lines, runtime command/answers."""

    name = ""
    error_line: re.Pattern[str] = re.compile(r"$^")  # answers that mean "command refused"

    def __init__(self, radio: RadioSettings) -> None:
        if radio.code_rate not in CODE_RATES:
            raise ValueError(f"code rate {radio.code_rate!r}")
        self.radio = radio
        self._writes: list[str] = []
        self._errors: list[SerialLineError] = []
        self._steps: list[Step] = []
        self._step = -1  # index into _steps while setting up; -1 when not setting up
        self._deadline: float | None = None
        self.receiving = False
        self.failed = False

    # -- driving -------------------------------------------------------------------------

    def steps(self) -> list[Step]:
        raise NotImplementedError

    def begin(self, now: float) -> None:
        """(Re)start the whole setup sequence, e.g. after the port was reopened."""
        self._writes.clear()
        self._steps = self.steps()
        self.receiving = self.failed = False
        self._reset_runtime()
        self._start_step(0, now)

    def take_writes(self) -> list[str]:
        """Command lines to write, without line ending (the shell appends CR LF)."""
        out, self._writes = self._writes, []
        return out

    def take_errors(self) -> list[SerialLineError]:
        """Problems noticed while handling another line (e.g. an unpaired metadata line)."""
        out, self._errors = self._errors, []
        return out

    def deadline(self) -> float | None:
        return self._deadline

    def feed(self, line: str, now: float) -> ParsedEvent | None:
        """One received line. Raises SerialLineError for a bad line (counted, never fatal)."""
        line = line.strip()
        if not line:
            return None
        handled, ev = self._event(line, now)
        if handled:
            return ev
        if self._step >= 0:
            return self._setup_line(line, now)
        if self.receiving:
            return self._runtime_line(line, now)
        return None  # failed or not started: nothing is expected

    def tick(self, now: float) -> ParsedEvent | None:
        if self._deadline is None or now < self._deadline:
            return None
        if self._step >= 0:
            step = self._steps[self._step]
            if step.optional:
                return self._next_step(now)
            return self._fail(step.command, "timeout")
        self._deadline = None
        return self._runtime_timeout(now)

    # -- setup ---------------------------------------------------------------------------

    def _send(self, command: str) -> None:
        self._writes.append(command)

    def _start_step(self, i: int, now: float) -> None:
        self._step = i
        step = self._steps[i]
        self._send(step.command)
        self._deadline = now + step.timeout_s

    def _next_step(self, now: float) -> ParsedEvent | None:
        if self._step + 1 < len(self._steps):
            self._start_step(self._step + 1, now)
            return None
        self._step = -1
        self._deadline = None
        self.receiving = True
        return SetupDone(self.name)

    def _fail(self, command: str, answer: str) -> SetupFailed:
        self._step = -1
        self._deadline = None
        self.failed = True
        return SetupFailed(command, answer[:120])

    def _setup_line(self, line: str, now: float) -> ParsedEvent | None:
        step = self._steps[self._step]
        if step.ok.match(line):
            if step.check is not None and not step.check(line):
                return self._fail(step.command, line)
            return self._next_step(now)
        if self.error_line.match(line):
            return self._fail(step.command, line)
        return None  # banners, echoes and boot noise before the answer

    # -- dialect hooks -------------------------------------------------------------------

    def _reset_runtime(self) -> None:
        pass

    def _event(self, line: str, now: float) -> tuple[bool, ParsedEvent | None]:
        """Unsolicited receive lines, matched by prefix at any time (section 2)."""
        return False, None

    def _runtime_line(self, line: str, now: float) -> ParsedEvent | None:
        raise SerialLineError(f"unexpected line {line[:40]!r}")

    def _runtime_timeout(self, now: float) -> ParsedEvent | None:
        return None


# type name -> session class; the `format` key of a serial source.
DIALECTS: dict[str, type[ModemSession]] = {}


def dialect(name: str) -> Callable[[type[ModemSession]], type[ModemSession]]:
    def deco(cls: type[ModemSession]) -> type[ModemSession]:
        if name in DIALECTS:
            raise ValueError(f"duplicate serial dialect {name!r}")
        cls.name = name
        DIALECTS[name] = cls
        return cls

    return deco


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
                self._snr = _int(line)
            self._send("radio get rssi")
            self._state = "wait_rssi"
            self._deadline = now + SIGNAL_TIMEOUT_S
            return None
        if self._state == "wait_rssi":
            # Firmware before 1.0.5 has no `radio get rssi`: report it as unknown.
            return self._finish(None if line == "invalid_param" else _int(line), now)
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
            rssi, snr = _int(parts[2]), _int(parts[3])
            payload = parse_payload_hex(parts[-1])
            if len(parts) == 6 and _int(parts[4]) != len(payload):
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
