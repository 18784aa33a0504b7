"""`[[rules]]` loading: errors name the rule and the key; presets; actions; selectors."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from gateway_agent.config import load_config
from gateway_agent.errors import ConfigError
from gateway_agent.model import Device
from gateway_agent.rules import KINDS, PRESETS, CommandAction, DownlinkAction, load_rules
from gateway_agent.rules.duration import format_duration, parse_duration

OK = {"name": "co2-critical", "kind": "threshold", "measurement": "co2_ppm", "above": 2000}


def err(raw: list[dict[str, Any]]) -> str:
    with pytest.raises(ConfigError) as e:
        load_rules(raw)
    return str(e.value)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"above": "x"}, 'rules[2] (co2-critical).above: expected a number, got "x"'),
        ({"above": True}, "rules[2] (co2-critical).above: expected a number, got true"),
        ({"colour": "red"}, "rules[2] (co2-critical).colour: unknown key"),
        ({"for": "10 minutes"}, "rules[2] (co2-critical).for: expected a duration"),
        ({"for": -5}, "rules[2] (co2-critical).for: expected a non-negative number"),
        ({"severity": "high"}, "rules[2] (co2-critical).severity: expected one of info, warning"),
        ({"kind": "magic"}, "rules[2] (co2-critical).kind: expected one of band, battery"),
        ({"below": 3}, "rules[2] (co2-critical).above: give exactly one of above or below"),
        ({"clear": 2500}, "rules[2] (co2-critical).clear: must not be above the limit 2000"),
        (
            {"command": "mail -s alert duty@council"},
            "rules[2] (co2-critical).command: expected an argv array",
        ),
        ({"command": ["notify", 3]}, "rules[2] (co2-critical).command[1]: expected a non-empty"),
        ({"timeout": "5s"}, "rules[2] (co2-critical).timeout: only applies to a command"),
        (
            {"downlink": {"f_port": 0, "payload": "01"}},
            "rules[2] (co2-critical).downlink.f_port: expected an integer from 1 to 223, got 0",
        ),
        (
            {"downlink": {"f_port": 10, "payload": "zz"}},
            'rules[2] (co2-critical).downlink.payload: expected hex bytes, got "zz"',
        ),
        (
            {"downlink": {"f_port": 10, "payload": "01", "port": 3}},
            "rules[2] (co2-critical).downlink.port: unknown key",
        ),
        (
            {"select": {"class": "boiler"}},
            "rules[2] (co2-critical).select.class: expected one of co2, legionella",
        ),
        (
            {"select": {"dev_eui": ["70b3d57ed0000001", "xyz"]}},
            'rules[2] (co2-critical).select.dev_eui[1]: expected 16 hex digits, got "xyz"',
        ),
        ({"select": {"tag": ["a"]}}, "rules[2] (co2-critical).select.tag: unknown key"),
        ({"name": "bad name!"}, "rules[2] (bad name!).name: expected letters, digits"),
    ],
)
def test_errors_name_rule_index_name_and_key(table: dict[str, Any], expected: str) -> None:
    ok1 = {**OK, "name": "a"}
    ok2 = {**OK, "name": "b"}
    assert err([ok1, ok2, {**OK, **table}]).startswith(expected)


def test_missing_name_and_kind() -> None:
    assert err([{"kind": "silence", "for": "1h"}]) == "rules[0].name: is required"
    assert err([{"name": "x"}]) == "rules[0] (x).kind: is required"
    assert err([{"name": "x", "kind": "silence"}]) == "rules[0] (x).for: is required"
    assert err(["nope"]) == 'rules[0]: expected a table, got "nope"'  # type: ignore[list-item]


def test_duplicate_names_rejected_also_across_presets() -> None:
    assert err([OK, OK]) == (
        'rules[1] (co2-critical).name: duplicate rule name "co2-critical" (first in rules[0])'
    )
    assert 'duplicate rule name "co2-critical"' in err([OK, {"preset": "co2"}])
    assert len(load_rules([{"preset": "co2"}, {"preset": "co2", "name": "lab"}])) == 4


def test_preset_errors_name_the_preset() -> None:
    assert (
        err([{"preset": "co2", "warning": "lots"}])
        == 'rules[0] (co2).warning: expected a number, got "lots"'
    )
    assert err([{"preset": "co2", "above": 3}]) == "rules[0] (co2).above: unknown key"
    assert err([{"preset": "fog"}]).startswith("rules[0] (fog).preset: expected one of bin, bins")
    assert err([{"preset": "co2", "critical": 1200}]).startswith(
        "rules[0] (co2).critical: must be above warning"
    )
    assert err([{"preset": "co2", "only": ["warn"]}]).startswith(
        'rules[0] (co2).only[0]: expected one of warning, critical, got "warn"'
    )
    assert err([{"preset": "gully", "name": "g", "per": "soon"}]).startswith(
        "rules[0] (g).per: expected a duration"
    )


def test_every_preset_expands_and_selects_its_class() -> None:
    cls = {
        "co2": "co2",
        "legionella": "legionella",
        "bins": "bin",
        "bin": "bin",
        "gully": "gully",
        "gullies": "gully",
    }
    assert set(PRESETS) == set(cls)
    for name, c in cls.items():
        rules = load_rules([{"preset": name}])
        assert rules and all(r.selector.classes == (c,) for r in rules)
        assert all(r.kind in KINDS for r in rules)


def test_legionella_roles_by_tag() -> None:
    rules = {r.name: r for r in load_rules([{"preset": "legionella"}])}
    eui = bytes.fromhex("0000000000000001")

    def dev(*tags: str) -> Device:
        return Device(dev_eui=eui, device_class="legionella", tags=tags)

    picked = {n for n, r in rules.items() if r.selects(dev("hot", "outlet"))}
    assert picked == {"legionella-hot", "legionella-flush"}
    assert {n for n, r in rules.items() if r.selects(dev("calorifier"))} == {"legionella-storage"}


def test_actions_and_selectors() -> None:
    [r] = load_rules(
        [
            {
                **OK,
                "command": ["notify-duty", "--rule", "co2"],
                "timeout": "30s",
                "downlink": {"f_port": 10, "payload": "01FF"},
                "actions_on": "both",
                "select": {
                    "class": ["co2", "other"],
                    "codec": "milesight/am319",
                    "tags_all": ["fife"],
                    "dev_eui": "70B3D57ED0000001",
                },
            }
        ]
    )
    assert r.actions == (
        CommandAction(("notify-duty", "--rule", "co2"), 30.0),
        DownlinkAction(10, b"\x01\xff"),
    )
    assert r.actions_for("cleared") == r.actions
    eui = bytes.fromhex("70b3d57ed0000001")
    good = Device(dev_eui=eui, device_class="co2", codec="milesight/am319", tags=("fife", "x"))
    assert r.selects(good)
    assert not r.selects(Device(dev_eui=eui, device_class="co2", codec="milesight/am319"))
    assert not r.selects(
        Device(dev_eui=bytes(8), device_class="co2", codec="milesight/am319", tags=("fife",))
    )
    [plain] = load_rules([OK])
    assert plain.actions == () and plain.actions_for("raised") == ()
    assert plain.selects(Device(dev_eui=bytes(8)))  # no select: every device


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1w", 604800),
        (45, 45),
        (2.5, 2.5),
        ("0s", 0),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["", "10", "m", "10 minutes", "-5m", True, [], float("inf")])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_duration(bad)


def test_agent_config_loader_builds_rules_from_toml() -> None:
    doc = tomllib.loads("""
[agent]
gateway_id = "b827ebfffe000001"

[[rules]]
preset = "co2"
select = { tags_all = ["school-017"] }

[[rules]]
name = "offline"
kind = "silence"
for = "2h"
command = ["/usr/local/bin/page", "--team", "iot"]
""")
    try:
        cfg = load_config(doc)
    except ConfigError as e:  # unrelated required sections are the lead's contract
        pytest.fail(f"config rejected: {e}")
    assert [r.name for r in cfg.rules] == ["co2-warning", "co2-critical", "offline"]
    bad = dict(doc, rules=[{"name": "x", "kind": "silence", "for": "2 hours"}])
    with pytest.raises(ConfigError, match=r"rules\[0\] \(x\)\.for"):
        load_config(bad)
