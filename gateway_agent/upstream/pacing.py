"""How fast the upstream goes: reconnect backoff, the message-rate ceiling, and the wake-up flag
the drain's two halves nudge each other with."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any


def resolve(w: asyncio.Future[None]) -> None:
    """Wake whoever awaits `w` (once: a timer and a callback may both try)."""
    if not w.done():
        w.set_result(None)


class Nudge:
    """A wake-up flag for one waiting coroutine without a task per wait (unlike wait_for)."""

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self, *_: Any) -> None:
        self._flag = True
        if self._waiter is not None:
            resolve(self._waiter)

    def clear(self) -> None:
        self._flag = False

    async def wait(self, timeout_s: float) -> None:
        if self._flag:
            self._flag = False
            return
        loop = asyncio.get_running_loop()
        self._waiter = w = loop.create_future()
        timer = loop.call_later(timeout_s, resolve, w)
        try:
            await w
        finally:
            timer.cancel()
            self._waiter = None
            self._flag = False


class Backoff:
    """Exponential backoff with full jitter: sleep uniform(0, min(cap, base * 2**n))."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None) -> None:
        self.base_s, self.cap_s = base_s, cap_s
        self.attempt = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class RateLimiter:
    """Token bucket for the upstream message-rate ceiling (0 = unlimited)."""

    def __init__(self, rate_per_s: float) -> None:
        self.rate = rate_per_s
        self.tokens = max(1.0, rate_per_s)
        self.last = time.monotonic()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        while True:
            now = time.monotonic()
            self.tokens = min(max(1.0, self.rate), self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)
