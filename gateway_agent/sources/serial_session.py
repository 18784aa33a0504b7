"""Serial modem session engine: line buffering, setup steps, events, the dialect registry. Pure.

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


def parse_int(text: str) -> int:
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
