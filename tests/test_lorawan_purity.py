"""The LoRaWAN core is sans-IO: walk every module's imports against architecture-parts.json."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "gateway_agent" / "lorawan"
PARTS = ROOT / "docs" / "architecture.json"
STDLIB_IO = {"asyncio", "socket", "sqlite3", "logging", "time", "threading", "subprocess"}
FALLBACK_NEVER = [
    "gateway_agent/sources/",
    "gateway_agent/store/__init__.py",
    "gateway_agent/upstream/forwarder.py",
]


def forbidden_prefixes() -> set[str]:
    paths = FALLBACK_NEVER
    if PARTS.exists():  # the shared contract when present; the same three parts otherwise
        spec = json.loads(PARTS.read_text())
        never = {b for a, b, _ in spec["never"] if a == "Lorawan"}
        paths = [p for name in never for p in spec["parts"][name]["is"]]
    return {p.removesuffix("/").removesuffix(".py").replace("/", ".") for p in paths}


def imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


MODULES = sorted(CORE.glob("*.py"))


def test_forbidden_list_is_the_contract() -> None:
    assert forbidden_prefixes() >= {
        "gateway_agent.sources",
        "gateway_agent.store",
        "gateway_agent.upstream.forwarder",
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_imports(path: Path) -> None:
    bad = forbidden_prefixes() | STDLIB_IO
    for name in imports(path):
        for b in bad:
            assert not (name == b or name.startswith(b + ".")), f"{path.name} imports {name}"
        if name.startswith("gateway_agent.") and not name.startswith("gateway_agent.lorawan"):
            assert name.startswith("gateway_agent.errors"), f"{path.name} imports {name}"


def test_every_brief_module_exists() -> None:
    names = {p.stem for p in MODULES}
    assert names >= {
        "frame",
        "crypto",
        "fcnt",
        "session",
        "mac",
        "dedup",
        "join",
        "region",
        "airtime",
        "downlink",
        "inspect",
        "radio",
    }
