"""The layers of DESIGN.md, read from the source: no import circle (counting imports inside
functions and under TYPE_CHECKING, which a circle merely hides), nothing below `app.py` imports
it, and the core imports no feature. A change that breaks one fails here with the path."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
CORE = ("oci", "registry", "access", "policy", "jobs", "store", "db", "cache")
# ops/ (health, logs, metrics, maintenance) is wired in by app.py like a feature: the core
# offers hooks and never imports it.
FEATURES = ("audit", "events", "domains", "backup", "scan", "signing", "replication", "helm",
            "remote", "ops", "sso", "blocking")
ABOVE_APP = ("moorage.cli", "moorage.__main__")  # the command starts the app


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of ours that `name` imports anywhere in its text."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.add(target if target in modules else base)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m in modules and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def test_no_module_imports_itself_round_a_circle(graph: dict[str, set[str]]) -> None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as circle:
        pytest.fail("import circle: " + " -> ".join(reversed(circle.args[1])))


def test_nothing_below_app_imports_app(graph: dict[str, set[str]]) -> None:
    importers = sorted(m for m, targets in graph.items()
                       if "moorage.app" in targets and not m.startswith(ABOVE_APP))
    assert importers == []


def test_the_core_imports_no_feature(graph: dict[str, set[str]]) -> None:
    wrong = sorted((m, t) for m, targets in graph.items()
                   if m.split(".")[1:2] and m.split(".")[1] in CORE
                   for t in targets if t.split(".")[1:2] and t.split(".")[1] in FEATURES)
    assert wrong == []
