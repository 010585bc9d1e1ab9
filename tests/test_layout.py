"""The package's layout rules: small modules with a docstring, and imports that follow the flow
data -> spaces -> program -> search -> selection -> export -> report (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesnas"
MAX_LINES = 300
MODULES = sorted(PACKAGE.rglob("*.py"))

# stage -> stages it must never import (a later stage, or one it has no business with)
NEVER = {
    "data": (
        "spaces",
        "priors",
        "program",
        "models",
        "guides",
        "search",
        "selection",
        "export",
        "report",
    ),
    "spaces": (
        "data",
        "priors",
        "program",
        "models",
        "guides",
        "search",
        "selection",
        "export",
        "report",
    ),
    "priors": ("program", "models", "guides", "search", "selection", "export", "report", "train"),
    "gates": ("data", "priors", "program", "search", "selection", "export", "report"),
    "models": ("data", "priors", "search", "selection", "export", "report"),
    "guides": ("data", "priors", "search", "selection", "export", "report"),
    "program": ("data", "priors", "search", "selection", "export", "report"),
    "search": ("selection", "export", "report"),
    "selection": ("search", "report"),
    "export": ("search", "selection", "report", "train"),
    "train": ("search", "selection", "report"),
    # run support, used by every stage: it knows none of them
    "config": ("program", "search", "selection", "export", "report", "train"),
    "rundir": ("data", "spaces", "program", "search", "selection", "export", "report", "train"),
    "device": ("data", "spaces", "program", "search", "selection", "export", "report", "train"),
    "distributed": ("data", "spaces", "program", "search", "selection", "export", "report"),
}


def stage(module: Path) -> str:
    """The first name under bayesnas/ (a folder or a module without .py)."""
    return module.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_stages(module: Path) -> set[str]:
    """The bayesnas stages ``module`` imports, at any depth (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "bayesnas" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small_and_says_what_it_is(module: Path) -> None:
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module.name} has {lines} lines; split it by concept"
    if module.name != "__main__.py":
        assert ast.get_docstring(ast.parse(module.read_text())), f"{module} has no docstring"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_flow(module: Path) -> None:
    forbidden = set(NEVER.get(stage(module), ())) & imported_stages(module)
    assert not forbidden, f"{module.relative_to(PACKAGE)} imports {sorted(forbidden)}"
