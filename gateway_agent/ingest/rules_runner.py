"""Runs the configured rules: on each reading and on the timer (silence, `for` windows). Keeps
each (rule, device) state in memory and stages it, serialized, with the batch. Elapsed time is the
monotonic clock's: a wall-clock step (found on every tick and reading) moves every state by it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway_agent.config import Config
from gateway_agent.ingest.sessions import SessionCache
from gateway_agent.ingest.stage import Stage
from gateway_agent.logfmt import RateLimitedLog, log_event
from gateway_agent.metrics import Counters
from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import engine

RuleKey = tuple[str, str]  # (rule name, dev_eui hex)
log = logging.getLogger("gateway_agent.ingest")  # one logger name for the ingest's log lines
SWEEP_S = 60.0  # how often devices never heard get their first silence/deviation tick


class RuleRunner:
    def __init__(
        self,
        cfg: Config,
        cache: SessionCache,
        stage: Stage,
        counters: Counters,
        limiter: RateLimitedLog,
    ) -> None:
        self.cfg = cfg
        self.cache = cache
        self.stage = stage
        self.counters = counters
        self.limiter = limiter
        # A state as stored (JSON text) until its rule first needs it, then the engine's value.
        self.states: dict[RuleKey, Any] = {}
        self._next_sweep = float("-inf")  # monotonic
        # The clocks, replaceable for tests (an injected clock stepping from 1970 to now).
        self.wall: Callable[[], float] = time.time
        self.mono: Callable[[], float] = time.monotonic
        self.clock = engine.ClockWatch()

    def load(self, stored: Mapping[RuleKey, str]) -> None:
        self.states = dict(stored)
        self.clock = engine.ClockWatch()  # the next pair checks them against the clock

    def evaluate(self, dev: Device, r: Reading) -> None:
        """Every rule that selects `dev`, over reading `r`."""
        if not self.cfg.rules:
            return
        now = r.time
        rx = r.rx[0] if r.rx else None
        if rx is None or not self.clock.same_frame(rx.rx_wall, rx.rx_mono):
            # A step since the last pair, or a reading stamped before one: read the clocks.
            self.observe_clock(self.wall(), self.mono())
            if rx is not None:
                now = self.clock.current(min(x.rx_wall for x in r.rx), rx.rx_mono)
        for rule in self.cfg.rules:
            if not rule.selects(dev):
                continue
            key = (rule.name, dev.dev_eui.hex())
            try:
                state, alerts = engine.evaluate(rule, self._state(key), r, now)
            except Exception:
                self.counters.internal_error("rules")
                self.limiter.exception("rule_failed", rule=rule.name)
                continue
            self._result(key, state, alerts, dev)

    def tick(self, now_wall: float, now_mono: float | None = None) -> None:
        """Timer path for silence and `for` windows that elapse without uplinks. `now_mono` is
        the monotonic clock read with `now_wall` (None: read it now)."""
        if not self.cfg.rules:
            return
        mono = self.mono() if now_mono is None else now_mono
        self.observe_clock(now_wall, mono)
        rules = {r.name: r for r in self.cfg.rules}
        devices = self.cache.devices
        if mono >= self._next_sweep:
            # Devices never heard since the rule appeared have no state yet: give the kinds that
            # act without uplinks (silence, deviation by activity) their first tick.
            self._next_sweep = mono + SWEEP_S
            for rule in self.cfg.rules:
                if rule.kind not in ("silence", "deviation"):
                    continue
                for dev in devices.values():
                    key = (rule.name, dev.dev_eui.hex())
                    if key not in self.states and rule.selects(dev):
                        self._tick_one(rule, key, dev, now_wall, force=True)
        for key in list(self.states):
            rule = rules.get(key[0])
            known = devices.get(bytes.fromhex(key[1]))
            if rule is None or known is None:
                continue
            self._tick_one(rule, key, known, now_wall)

    def observe_clock(self, wall: float, mono: float) -> None:
        """A (wall, monotonic) pair read now. A wall-clock step since the last pair moves every
        rule state by the step; the first pair after a load moves them back to now when the
        clock is behind what they hold (a restart into 1970, or after a step back)."""
        step = self.clock.observe(wall, mono)
        if step == 0.0:
            return
        rules = {r.name: r for r in self.cfg.rules}
        held = []  # (key, rule, state) of every state a configured rule holds
        for key in list(self.states):
            rule, st = rules.get(key[0]), self._state(key)
            if rule is not None and st is not None:
                held.append((key, rule, st))
        if step is None:
            newest = max(
                (t for _, rule, st in held if (t := engine.latest(rule, st)) is not None),
                default=wall,
            )
            if wall >= newest - engine.STEP_S:
                return
            step = wall - newest
        moved = 0
        for key, rule, st in held:
            new = engine.rebase(rule, st, step)
            if new is not st:
                self._result(key, new, [], None)
                moved += 1
        self.counters.inc("rule_clock_steps")
        log_event(log, logging.WARNING, "rules_rebased", step_s=round(step, 3), states=moved)

    def _tick_one(
        self, rule: Any, key: RuleKey, dev: Device, now_wall: float, force: bool = False
    ) -> None:
        prev = self._state(key)
        if not force:
            due = engine.next_due(rule, prev)
            if due is None or due > now_wall:
                return
        try:
            state, alerts = engine.tick(rule, prev, dev, now_wall)
        except Exception:
            self.counters.internal_error("rules")
            self.limiter.exception("rule_failed", rule=rule.name)
            return
        if alerts or state is not prev:
            self._result(key, state, alerts, dev)

    def _state(self, key: RuleKey) -> Any:
        st = self.states.get(key)
        if isinstance(st, str):
            try:
                st = engine.state_from_json(st)
            except Exception:
                st = None
            self.states[key] = st
        return st

    def _result(self, key: RuleKey, state: Any, alerts: list[Alert], dev: Device | None) -> None:
        self.states[key] = state
        self.stage.rule_state(key, engine.state_to_json(state) if state is not None else None)
        for a in alerts:
            self.stage.alert(a, dev)
