"""The `Rule` value: name, kind, severity, selector, kind parameters and actions. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from gateway_agent.model import Device

SEVERITIES = ("info", "warning", "critical")
ACTIONS_ON = ("raised", "cleared", "both")


@dataclass(frozen=True, slots=True)
class Selector:
    """Which devices a rule watches. Every field given must match (AND); an empty one matches all.

    `tags_any`: at least one of these tags; `tags_all`: every one; `tags_none`: none of them.
    """

    classes: tuple[str, ...] = ()
    codecs: tuple[str, ...] = ()
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    tags_none: tuple[str, ...] = ()
    dev_euis: tuple[bytes, ...] = ()

    def matches(self, device: Device) -> bool:
        if self.classes and device.device_class not in self.classes:
            return False
        if self.codecs and device.codec not in self.codecs:
            return False
        if self.tags_any and not set(self.tags_any) & set(device.tags):
            return False
        if self.tags_all and not set(self.tags_all) <= set(device.tags):
            return False
        if self.tags_none and set(self.tags_none) & set(device.tags):
            return False
        return not (self.dev_euis and device.dev_eui not in self.dev_euis)


@dataclass(frozen=True, slots=True)
class CommandAction:
    """Run `argv` (never through a shell), killed after `timeout_s`. The daemon executes it."""

    argv: tuple[str, ...]
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class DownlinkAction:
    """Queue `payload` on `f_port` to the alerting device. The daemon executes it."""

    f_port: int
    payload: bytes
    confirmed: bool = False


Action = CommandAction | DownlinkAction


@dataclass(frozen=True, slots=True)
class Params:
    """Base of every kind's parameters. `for_s`: how long the condition must hold before raising;
    `clear_for_s`: how long the clear condition must hold before clearing."""

    for_s: float = 0.0
    clear_for_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Rule:
    """One configured rule. `params` is the kind's own frozen dataclass (see `KINDS`)."""

    name: str
    kind: str
    severity: str
    selector: Selector
    params: Params
    actions: tuple[Action, ...] = ()
    actions_on: str = "raised"  # raised | cleared | both

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        if self.actions_on not in ACTIONS_ON:
            raise ValueError(f"actions_on must be one of {', '.join(ACTIONS_ON)}")

    def selects(self, device: Device) -> bool:
        return self.selector.matches(device)

    def actions_for(self, alert_state: str) -> tuple[Action, ...]:
        """The actions to run for an alert in `alert_state` ("raised" | "cleared")."""
        return self.actions if self.actions_on in (alert_state, "both") else ()
