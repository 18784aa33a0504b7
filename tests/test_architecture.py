"""The map is code: docs/architecture.json's parts and never-rules hold for the real import graph.

Every module under gateway_agent/, decoders/ and hil/ belongs to exactly one part; every import
(module level or inside a function) is checked against every never-rule; the pure parts import
no IO from the standard library; and no two modules import each other in a circle at import time.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAP = json.loads((ROOT / "docs" / "architecture.json").read_text())
TREES = ("gateway_agent", "decoders", "hil")


@dataclass(frozen=True)
class Import:
    source: str  # file path relative to the repository, e.g. "gateway_agent/cli/app.py"
    line: int
    target: str  # dotted module name as written (resolved for relative imports)
    top_level: bool  # executed at import time (not inside a function or TYPE_CHECKING)


def module_name(path: str) -> str:
    name = path.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(path: str, source: str, modules: set[str]) -> Iterator[Import]:
    """Every import in a file; `from a import b` names a.b when that is a module of the tree."""
    here = module_name(path)
    package = here if path.endswith("__init__.py") else here.rpartition(".")[0]

    def walk(node: ast.AST, top: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for a in child.names:
                    yield Import(path, child.lineno, a.name, top)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    up = parts[: len(parts) - (child.level - 1)]
                    base = ".".join([*up, base] if base else up)
                for a in child.names:
                    full = f"{base}.{a.name}"
                    yield Import(path, child.lineno, full if full in modules else base, top)
            elif isinstance(child, ast.If) and _type_checking(child):
                yield from walk(child, False)
            else:
                inner = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                yield from walk(child, top and not inner)

    yield from walk(ast.parse(source, path), True)


class Map:
    def __init__(self, spec: Mapping[str, object]) -> None:
        self.parts: dict[str, dict[str, object]] = dict(spec["parts"])  # type: ignore[arg-type]
        self.never: list[list[str]] = list(spec["never"])  # type: ignore[arg-type]
        self.prefixes = sorted(
            ((p, name) for name, part in self.parts.items() for p in part["is"]),  # type: ignore[attr-defined]
            key=lambda x: -len(x[0]),
        )

    def part_of(self, path: str) -> str | None:
        for prefix, name in self.prefixes:
            if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
                return name
        return None


def violations(files: Mapping[str, str], spec: Mapping[str, object]) -> list[str]:
    """Never-rule and pure-stdlib breaches in a tree given as {relative path: source}."""
    m = Map(spec)
    by_module = {module_name(p): p for p in files}
    out: list[str] = []
    never = {(a, b): why for a, b, why in m.never}
    for path, source in sorted(files.items()):
        src_part = m.part_of(path)
        if src_part is None:
            out.append(f"{path}: belongs to no part of docs/architecture.json")
            continue
        stdlib_never = set(m.parts[src_part].get("stdlib_never", []))  # type: ignore[call-overload]
        for imp in imports_of(path, source, set(by_module)):
            if imp.target.split(".")[0] in stdlib_never:
                out.append(f"{path}:{imp.line}: {src_part} is pure and imports {imp.target}")
            target = _module_path(imp.target, by_module)
            if target is None:
                continue
            dst_part = m.part_of(target)
            why = never.get((src_part, dst_part or ""))
            if why:
                out.append(
                    f"{path}:{imp.line}: {src_part} imports {dst_part} ({imp.target}): {why}"
                )
    return sorted(set(out))


def _module_path(target: str, by_module: Mapping[str, str]) -> str | None:
    while target:
        if target in by_module:
            return by_module[target]
        target = target.rpartition(".")[0]
    return None


def cycles(files: Mapping[str, str]) -> list[list[str]]:
    """Strongly connected groups of modules that import each other at import time."""
    by_module = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {mod: set() for mod in by_module}
    for path, source in files.items():
        for imp in imports_of(path, source, set(by_module)):
            if imp.top_level and imp.target in by_module and imp.target != module_name(path):
                graph[module_name(path)].add(imp.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def real_tree() -> dict[str, str]:
    return {
        str(p.relative_to(ROOT)): p.read_text()
        for tree in TREES
        for p in sorted((ROOT / tree).rglob("*.py"))
    }


def test_every_module_belongs_to_exactly_one_part() -> None:
    """A module belongs to the part with the most specific claim on its path (a file, or the
    deepest folder): no path is claimed twice, and no module is left without a part."""
    m = Map(MAP)
    claims = [p for _, part in m.parts.items() for p in part["is"]]  # type: ignore[attr-defined]
    assert len(claims) == len(set(claims))
    assert [path for path in real_tree() if m.part_of(path) is None] == []


def test_never_rules_hold_for_the_real_import_graph() -> None:
    assert violations(real_tree(), MAP) == []


def test_no_import_cycles() -> None:
    assert cycles(real_tree()) == []


def test_every_rule_names_known_parts() -> None:
    for a, b, why in MAP["never"]:
        assert a in MAP["parts"] and b in MAP["parts"] and why


# The checker itself: each kind of breach is caught (a checker that passes everything is no test).
TINY = {
    "parts": {
        "Core": {"is": ["pkg/core/"], "stdlib_never": ["socket"]},
        "Shell": {"is": ["pkg/shell.py"]},
        "Cli": {"is": ["pkg/cli/"]},
        "Daemon": {"is": ["pkg/daemon/"]},
    },
    "never": [["Core", "Shell", "pure"], ["Cli", "Daemon", "over the socket"]],
}


@pytest.mark.parametrize(
    ("path", "source", "expected"),
    [
        ("pkg/core/a.py", "from pkg.shell import x\n", "Core imports Shell"),
        ("pkg/core/a.py", "import pkg.shell\n", "Core imports Shell"),
        ("pkg/core/a.py", "def f():\n    from pkg import shell\n", "Core imports Shell"),
        ("pkg/core/a.py", "from .. import shell\n", "Core imports Shell"),
        ("pkg/core/a.py", "import socket\n", "Core is pure and imports socket"),
        ("pkg/cli/run.py", "def run():\n    from pkg.daemon import run\n", "Cli imports Daemon"),
        ("pkg/stray.py", "x = 1\n", "belongs to no part"),
    ],
)
def test_checker_catches(path: str, source: str, expected: str) -> None:
    tree = {
        "pkg/shell.py": "x = 1\n",
        "pkg/daemon/__init__.py": "def run(): ...\n",
        "pkg/core/__init__.py": "",
        path: source,
    }
    found = violations(tree, TINY)
    assert any(expected in v for v in found), found


def test_checker_allows_what_no_rule_forbids() -> None:
    tree = {"pkg/shell.py": "from pkg.core import a\n", "pkg/core/a.py": "import json\n"}
    assert violations(tree, TINY) == []


def test_cycle_finder() -> None:
    tree = {
        "pkg/cli/__init__.py": "from pkg.cli import data\nmain = 1\n",
        "pkg/cli/data.py": "from pkg.cli import main\n",
        "pkg/cli/ok.py": "def f():\n    from pkg.cli import data\n",
    }
    assert cycles(tree) == [["pkg.cli", "pkg.cli.data"]]
