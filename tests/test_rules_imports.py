"""The rules engine stays pure: nothing under gateway_agent/rules imports IO, clocks or the shell."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway_agent.rules

RULES = Path(gateway_agent.rules.__file__).parent
FORBIDDEN = {
    "asyncio",
    "sqlite3",
    "socket",
    "logging",
    "time",
    "subprocess",
    "os",
    "threading",
    "gateway_agent.store",
    "gateway_agent.upstream.forwarder",
    "gateway_agent.daemon",
    "gateway_agent.sources",
    "gateway_agent.ingest",
    "gateway_agent.cli",
}


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_no_forbidden_imports() -> None:
    files = sorted(RULES.rglob("*.py"))
    assert len(files) >= 10
    for f in files:
        for name in imports(f):
            hit = {x for x in FORBIDDEN if name == x or name.startswith(x + ".")}
            assert not hit, f"{f.name} imports {name}"
