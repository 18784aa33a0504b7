"""Runs the configured rules: on each reading and on the timer (silence, `for` windows). Keeps
each (rule, device) state in memory and stages it, serialized, with the batch."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway_agent.config import Config
from gateway_agent.ingest.sessions import SessionCache
from gateway_agent.ingest.stage import Stage
from gateway_agent.logfmt import RateLimitedLog
from gateway_agent.metrics import Counters
from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules import engine

RuleKey = tuple[str, str]  # (rule name, dev_eui hex)


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
        self._next_sweep = 0.0

    def load(self, stored: Mapping[RuleKey, str]) -> None:
        self.states = dict(stored)

    def evaluate(self, dev: Device, r: Reading) -> None:
        """Every rule that selects `dev`, over reading `r`."""
        if not self.cfg.rules:
            return
        for rule in self.cfg.rules:
            if not rule.selects(dev):
                continue
            key = (rule.name, dev.dev_eui.hex())
            try:
                state, alerts = engine.evaluate(rule, self._state(key), r, r.time)
            except Exception:
                self.counters.internal_error("rules")
                self.limiter.exception("rule_failed", rule=rule.name)
                continue
            self._result(key, state, alerts, dev)

    def tick(self, now_wall: float) -> None:
        """Timer path for silence and `for` windows that elapse without uplinks."""
        if not self.cfg.rules:
            return
        rules = {r.name: r for r in self.cfg.rules}
        devices = self.cache.devices
        if now_wall >= self._next_sweep:
            # Devices never heard since the rule appeared have no state yet: give the kinds that
            # act without uplinks (silence, deviation by activity) their first tick.
            self._next_sweep = now_wall + 60.0
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

    def _result(self, key: RuleKey, state: Any, alerts: list[Alert], dev: Device) -> None:
        self.states[key] = state
        self.stage.rule_state(key, engine.state_to_json(state) if state is not None else None)
        for a in alerts:
            self.stage.alert(a, dev)
