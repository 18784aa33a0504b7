"""One line per event: `event key=value ...`, rate-limited for bad input. No secrets.

Values are rendered with repr-free quoting; a `Secret` renders as <redacted> by construction.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any


def _fmt_value(v: Any) -> str:
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float):
        return f"{v:.6g}"
    s = str(v)
    if not s or any(c in s for c in ' "=\n'):
        s = '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return s


def format_event(event: str, **fields: Any) -> str:
    parts = [event]
    parts.extend(f"{k}={_fmt_value(v)}" for k, v in fields.items() if v is not None)
    return " ".join(parts)


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, format_event(event, **fields))


class RateLimitedLog:
    """Logs the first occurrence of a key, then at most one summary per window with `count=`.

    `clock` is injectable for tests; the daemon uses time.monotonic.
    """

    def __init__(
        self, logger: logging.Logger, window_s: float = 10.0, clock: Any = time.monotonic
    ) -> None:
        self.logger = logger
        self.window_s = window_s
        self.clock = clock
        self._state: dict[str, tuple[float, int]] = {}  # key -> (window start, suppressed count)

    def _should_log(self, key: str) -> tuple[bool, int]:
        now = self.clock()
        st = self._state.get(key)
        if st is None:
            self._state[key] = (now, 0)
            return True, 1
        start, suppressed = st
        if now - start >= self.window_s:
            self._state[key] = (now, 0)
            return True, suppressed + 1
        self._state[key] = (start, suppressed + 1)
        return False, 0

    def warn(self, event: str, *, key: str | None = None, **fields: Any) -> None:
        ok, count = self._should_log(key or f"{event}:{fields.get('reason', '')}")
        if ok:
            log_event(
                self.logger, logging.WARNING, event, count=count, window_s=self.window_s, **fields
            )

    def exception(self, event: str, **fields: Any) -> None:
        ok, count = self._should_log(f"exc:{event}")
        if ok:
            self.logger.error(format_event(event, count=count, **fields), exc_info=True)


def setup_logging(level: str = "INFO") -> None:
    """Stderr, no timestamps (journald adds them), `LEVEL logger: event k=v`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
