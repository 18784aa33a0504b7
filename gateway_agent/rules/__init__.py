"""Edge rules. Pure: no IO, no clock (time passed in), no logging.

`load_rules` builds `Rule`s from `[[rules]]` tables; `evaluate`/`tick` return new state + alerts.
"""

from gateway_agent.rules.config import load_rules
from gateway_agent.rules.engine import evaluate, next_due, tick
from gateway_agent.rules.kind import KINDS
from gateway_agent.rules.presets import PRESETS
from gateway_agent.rules.rule import Action, CommandAction, DownlinkAction, Rule, Selector
from gateway_agent.rules.state import RuleState, state_from_json, state_to_json

__all__ = [
    "KINDS",
    "PRESETS",
    "Action",
    "CommandAction",
    "DownlinkAction",
    "Rule",
    "RuleState",
    "Selector",
    "evaluate",
    "load_rules",
    "next_due",
    "state_from_json",
    "state_to_json",
    "tick",
]
