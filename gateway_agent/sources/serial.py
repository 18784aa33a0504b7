"""Serial LoRa modem source: pyserial in a thread, a dialect session per port, reconnect forever.

Uplink only: a serial modem gives no concentrator tmst, so no downlink can be scheduled.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

import serial as pyserial

from gateway_agent.config import SerialSourceConfig
from gateway_agent.errors import SerialLineError
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.lorawan.radio import DownlinkTx, RadioFrame, RxInfo
from gateway_agent.metrics import Counters
from gateway_agent.sources import Source, source_type
from gateway_agent.sources.serial_lines import (
    LineBuffer,
    ModemSession,
    Packet,
    RadioSettings,
    SetupDone,
    SetupFailed,
    new_session,
)

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.05  # how often the reader thread looks at stop / deadlines
BACKOFF_START_S = 0.2


class PortGone(OSError):
    """The device node disappeared while the port was open (USB unplug)."""


class SerialSource:
    """Implements `Source` for one modem on one serial port."""

    def __init__(self, cfg: SerialSourceConfig, counters: Counters) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.gateway_id
        self.counters = counters
        self.radio = RadioSettings(cfg.freq_hz, cfg.sf, cfg.bw_khz, cfg.code_rate)
        new_session(cfg.format, self.radio)  # fail at start on an unknown format
        self._limiter = RateLimitedLog(log, 10.0)
        self._halt = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out: asyncio.Queue[RadioFrame] | None = None
        # figures, written by the reader thread, read by stats() (ints/floats: atomic enough)
        self.connected = False
        self.receiving = False
        self.opens = 0
        self.setups = 0
        self.frames = 0
        self.bad_lines = 0
        self.last_frame_wall: float | None = None
        self.last_error: str | None = None

    # ------------------------------------------------------------------ Source protocol

    async def run(self, out: asyncio.Queue[RadioFrame], stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._out = out
        self._halt.clear()
        reader = asyncio.ensure_future(asyncio.to_thread(self._reader))
        try:
            await stop.wait()
        finally:
            self._halt.set()  # also on cancellation: the thread must not outlive the loop
            await asyncio.shield(reader)
            self._out = None

    def can_downlink(self, gateway_id: str) -> bool:
        return False

    def send_downlink(self, tx: DownlinkTx) -> bool:
        return False

    def stats(self) -> dict[str, Any]:
        gw = {
            "connected": self.connected,
            "receiving": self.receiving,
            "opens": self.opens,
            "setups": self.setups,
            "rx_ok": self.frames,
            "rx_bad": self.bad_lines,
            "last_seen": self.last_frame_wall,
            "last_error": self.last_error,
            "format": self.cfg.format,
        }
        return {
            "type": "serial",
            "name": self.name,
            "port": self.cfg.port,
            "frames": self.frames,
            "gateways": {self.cfg.gateway_id: gw},
        }

    # ------------------------------------------------------------------ reader thread

    def _reader(self) -> None:
        backoff = BACKOFF_START_S
        while not self._halt.is_set():
            try:
                port = pyserial.serial_for_url(
                    self.cfg.port,
                    baudrate=self.cfg.baudrate,
                    timeout=READ_TIMEOUT_S,
                    write_timeout=1.0,
                )
            except (pyserial.SerialException, OSError, ValueError) as exc:
                self._note_error("serial_open_failed", exc)
                self._halt.wait(backoff)
                backoff = min(backoff * 2, self.cfg.reopen_max_s)
                continue
            self.opens += 1
            self.connected = True
            log_event(
                log,
                logging.INFO,
                "serial_opened",
                source=self.name,
                port=self.cfg.port,
                format=self.cfg.format,
            )
            setups = self.setups
            try:
                self._session(port)
            except (pyserial.SerialException, OSError) as exc:
                self._note_error("serial_lost", exc)
            except Exception:
                self.counters.internal_error(f"source:{self.name}")
                self._limiter.exception("serial_internal_error", source=self.name)
            finally:
                self.connected = self.receiving = False
                try:
                    port.close()
                except (pyserial.SerialException, OSError):
                    pass
            if self.setups > setups:
                backoff = BACKOFF_START_S  # it worked for a while: a replug comes back quickly
            if not self._halt.is_set():
                self._halt.wait(backoff)
                backoff = min(backoff * 2, self.cfg.reopen_max_s)

    def _note_error(self, event: str, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        self.counters.inc(event, source=self.name)
        self._limiter.warn(event, source=self.name, port=self.cfg.port, error=self.last_error)

    def _session(self, port: Any) -> None:
        """Run the setup sequence, then receive until halted, the port fails or setup fails."""
        session: ModemSession = new_session(self.cfg.format, self.radio)
        lines = LineBuffer()
        session.begin(time.monotonic())
        while not self._halt.is_set():
            for cmd in session.take_writes():
                port.write(cmd.encode("ascii") + b"\r\n")
            data = port.read(max(1, port.in_waiting))
            if not data and not self._node_present():
                raise PortGone(f"{self.cfg.port} vanished")
            overflows = lines.overflows
            for line in lines.feed(data):
                self._handle(session, line)
            if lines.overflows != overflows:
                self._bad(SerialLineError("line longer than 1 KiB discarded"))
            ev = session.tick(time.monotonic())
            if ev is not None:
                self._event(ev)
            if session.failed:
                return

    def _node_present(self) -> bool:
        # URLs (socket://, loop://) have no node; a path that vanished means USB unplug.
        return "://" in self.cfg.port or os.path.exists(self.cfg.port)

    def _handle(self, session: ModemSession, line: str) -> None:
        try:
            ev = session.feed(line, time.monotonic())
        except SerialLineError as e:
            self._bad(e)
            ev = None
        for err in session.take_errors():
            self._bad(err)
        if ev is not None:
            self._event(ev)

    def _bad(self, e: SerialLineError) -> None:
        self.bad_lines += 1
        self.counters.bad_input(e.reason, source=self.name)
        self._limiter.warn("serial_bad_line", reason=e.reason, source=self.name, detail=str(e))

    def _event(self, ev: Packet | SetupDone | SetupFailed) -> None:
        if isinstance(ev, Packet):
            self._packet(ev)
        elif isinstance(ev, SetupDone):
            self.setups += 1
            self.receiving = True
            log_event(
                log,
                logging.INFO,
                "serial_receiving",
                source=self.name,
                format=self.cfg.format,
                freq_hz=self.cfg.freq_hz,
                sf=self.cfg.sf,
            )
        else:
            self.counters.inc("serial_setup_failed", source=self.name)
            self.last_error = f"setup: {ev.command} -> {ev.answer}"
            self._limiter.warn(
                "serial_setup_failed", source=self.name, command=ev.command, answer=ev.answer
            )

    def _packet(self, p: Packet) -> None:
        mono = time.monotonic()
        wall = time.time() - (mono - p.rx_time)
        rx = RxInfo(
            gateway_id=self.cfg.gateway_id,
            rx_mono=p.rx_time,
            rx_wall=wall,
            freq_hz=self.cfg.freq_hz,
            sf=self.cfg.sf,
            bw_khz=self.cfg.bw_khz,
            code_rate=self.cfg.code_rate,
            rssi_dbm=p.rssi_dbm,
            snr_db=p.snr_db,
            source=self.name,
        )
        self.frames += 1
        self.last_frame_wall = wall
        loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._put, RadioFrame(p.payload, rx))
            except RuntimeError:  # loop closed while shutting down
                pass

    def _put(self, frame: RadioFrame) -> None:
        out = self._out
        if out is None:
            return
        try:
            out.put_nowait(frame)
        except asyncio.QueueFull:
            self.counters.inc("frames_dropped", reason="queue_full", source=self.name)
            self._limiter.warn("frames_dropped", reason="queue_full", source=self.name)
            return
        self.counters.inc("frames_received", source=self.name)


@source_type("serial")
def make_serial_source(cfg: SerialSourceConfig, counters: Counters) -> Source:
    return SerialSource(cfg, counters)
