"""`[[rules]]` tables -> `Rule`s. Errors name the rule index and name: `rules[2] (co2-critical).above`.

The daemon's config loader calls `load_rules`. Pure.
"""

from __future__ import annotations

import re
from typing import Any

from gateway_agent.errors import ConfigError
from gateway_agent.model import DEVICE_CLASSES
from gateway_agent.rules import engine  # noqa: F401  (registers the kinds)
from gateway_agent.rules.kind import KINDS
from gateway_agent.rules.presets import PRESETS, expand
from gateway_agent.rules.rule import (
    ACTIONS_ON,
    SEVERITIES,
    Action,
    CommandAction,
    DownlinkAction,
    Rule,
    Selector,
)
from gateway_agent.rules.table import Table, show

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HEX16 = re.compile(r"[0-9A-Fa-f]{16}")
# Largest application payload at any EU868 data rate: M = 230 at DR4-7 (the repeater-compatible
# figures of the region table, lorawan/region.py) less 8 bytes of frame header.
MAX_DOWNLINK = 222


def rule_path(i: int, raw: object) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and name is None and isinstance(raw.get("preset"), str):
        name = raw["preset"]
    return f"rules[{i}] ({name})" if isinstance(name, str) and name else f"rules[{i}]"


def load_rules(raw: list[dict[str, Any]]) -> list[Rule]:
    """Validate `[[rules]]` tables (a `preset` table expands to several rules). Raises ConfigError."""
    if not isinstance(raw, list):
        raise ConfigError("rules", f"expected an array of tables ([[rules]]), got {show(raw)}")
    rules: list[Rule] = []
    where: dict[str, str] = {}
    for i, tbl in enumerate(raw):
        path = rule_path(i, tbl)
        t = Table(tbl, path)
        if t.has("preset"):
            built = [build_rule(Table(d, f"rules[{i}] ({d['name']})")) for d in expand(t, PRESETS)]
        else:
            built = [build_rule(t)]
        for r in built:
            if r.name in where:
                raise ConfigError(
                    f"rules[{i}] ({r.name}).name",
                    f'duplicate rule name "{r.name}" (first in {where[r.name]})',
                )
            where[r.name] = f"rules[{i}]"
        rules.extend(built)
    return rules


def build_rule(t: Table) -> Rule:
    """One plain (non-preset) rule table."""
    name = t.string("name", required=True)
    assert name is not None
    if not NAME.fullmatch(name):
        raise t.fail(
            "name", f"expected letters, digits, '-', '_' or '.' (max 64), got {show(name)}"
        )
    kind = t.string("kind", required=True)
    assert kind is not None
    if kind not in KINDS:
        raise t.fail("kind", f"expected one of {', '.join(sorted(KINDS))}, got {show(kind)}")
    severity = t.choice("severity", "warning", SEVERITIES)
    selector = parse_selector(t)
    actions, actions_on = parse_actions(t)
    params = KINDS[kind].parse(t)
    t.done()
    return Rule(name, kind, severity, selector, params, actions, actions_on)


def parse_selector(t: Table) -> Selector:
    if not t.has("select"):
        t.raw("select")
        return Selector()
    s = Table(t.raw("select"), t.key("select"))
    classes = s.strings("class") or ()
    for i, c in enumerate(classes):
        if c not in DEVICE_CLASSES:
            raise ConfigError(
                s.key("class") + (f"[{i}]" if isinstance(s.data["class"], list) else ""),
                f"expected one of {', '.join(DEVICE_CLASSES)}, got {show(c)}",
            )
    euis: list[bytes] = []
    for i, e in enumerate(s.strings("dev_eui") or ()):
        h = e.strip()
        if not HEX16.fullmatch(h):
            p = s.key("dev_eui") + (f"[{i}]" if isinstance(s.data["dev_eui"], list) else "")
            raise ConfigError(p, f"expected 16 hex digits, got {show(e)}")
        euis.append(bytes.fromhex(h))
    sel = Selector(
        classes=classes,
        codecs=s.strings("codec") or (),
        tags_any=s.strings("tags_any") or (),
        tags_all=s.strings("tags_all") or (),
        tags_none=s.strings("tags_none") or (),
        dev_euis=tuple(euis),
    )
    s.done()
    return sel


def parse_actions(t: Table) -> tuple[tuple[Action, ...], str]:
    actions: list[Action] = []
    cmd = t.raw("command")
    timeout = t.duration("timeout", 10.0)
    assert timeout is not None
    if cmd is not None:
        if isinstance(cmd, str):
            raise t.fail(
                "command",
                'expected an argv array such as ["notify", "--to", "duty"], not a shell string',
            )
        argv = t.strings("command", one_ok=False)
        assert argv is not None
        if timeout <= 0:
            raise t.fail("timeout", "must be longer than 0s")
        actions.append(CommandAction(argv, timeout))
    elif t.has("timeout"):
        raise t.fail("timeout", "only applies to a command")
    dl = t.raw("downlink")
    if dl is not None:
        d = Table(dl, t.key("downlink"))
        f_port = d.integer("f_port", 0, lo=1, hi=223)
        if not d.has("f_port"):
            raise d.fail("f_port", "is required")
        hexs = d.string("payload", required=True)
        assert hexs is not None
        try:
            payload = bytes.fromhex(hexs)
        except ValueError:
            raise d.fail("payload", f"expected hex bytes, got {show(hexs)}") from None
        if len(payload) > MAX_DOWNLINK:
            raise d.fail("payload", f"expected at most {MAX_DOWNLINK} bytes, got {len(payload)}")
        confirmed = d.boolean("confirmed", False)
        d.done()
        actions.append(DownlinkAction(f_port, payload, confirmed))
    on = t.choice("actions_on", "raised", ACTIONS_ON)
    return tuple(actions), on
