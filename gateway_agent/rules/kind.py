"""The rule-kind registry: `KINDS` maps a TOML `kind` to its implementation. Pure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from gateway_agent.model import Alert, Device, Reading
from gateway_agent.rules.rule import Params, Rule
from gateway_agent.rules.state import RuleState
from gateway_agent.rules.table import Table


class Kind(Protocol):
    """A rule kind. `parse` consumes its keys from the table (the caller rejects leftovers).

    A kind that keeps epoch times in `RuleState.data` names those keys in a class attribute,
    `time_keys` (single times) or `series_keys` ((time, ...) tuples), so that a clock step
    moves them with the state's own times (clock.py)."""

    def parse(self, t: Table) -> Params: ...

    def evaluate(
        self, rule: Rule, st: RuleState, reading: Reading, now: float
    ) -> tuple[RuleState, list[Alert]]: ...

    def tick(
        self, rule: Rule, st: RuleState, device: Device, now: float
    ) -> tuple[RuleState, list[Alert]]: ...

    def next_due(self, rule: Rule, st: RuleState) -> float | None: ...


KINDS: dict[str, Kind] = {}

K = TypeVar("K")


def kind(name: str) -> Callable[[type[K]], type[K]]:
    """Class decorator: register one instance of the class under `name`; duplicates fail."""

    def register(cls: type[K]) -> type[K]:
        if name in KINDS:
            raise RuntimeError(f"rule kind {name!r} registered twice")
        KINDS[name] = cls()  # type: ignore[assignment]
        return cls

    return register
