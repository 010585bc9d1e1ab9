"""The package's layout rules: small modules with a docstring, imports that follow the flow
data -> spaces -> program -> search -> selection -> export -> report (docs/architecture.md), no
import of the CLI below it, and no circle between two folders. A planted wrong-way import of
each kind, in a temporary copy of the package, must make the checks fail."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bayesnas"
MAX_LINES = 300
MODULES = sorted(PACKAGE.rglob("*.py"))

# stage -> stages it must never import (a later stage, or one it has no business with)
NEVER = {
    "data": (
        "config",
        "train",
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
    # the step loop a search and a training run share: it knows neither
    "loop": ("data", "spaces", "priors", "program", "search", "selection", "export", "train"),
}


STAGES_BELOW_CLI = "cli"  # the command line is the top: nothing under bayesnas/ imports it ...
ENTRY_POINTS = ("cli", "__main__")  # ... but the CLI itself and ``python -m bayesnas``
TOP = "__init__"  # the package's own top level (``from bayesnas import __version__``)


def stage(module: Path, package: Path = PACKAGE) -> str:
    """The first name under bayesnas/ (a folder or a module without .py)."""
    return module.relative_to(package).parts[0].removesuffix(".py")


def _stage_of(dotted: str, package: Path) -> str | None:
    """The stage an absolute dotted name under ``bayesnas`` belongs to (None: not ours)."""
    parts = dotted.split(".")
    if parts[0] != "bayesnas":
        return None
    if len(parts) == 1:
        return TOP
    name = parts[1]
    return name if (package / name).is_dir() or (package / f"{name}.py").is_file() else TOP


def imported_stages(module: Path, package: Path = PACKAGE) -> set[str]:
    """The bayesnas stages ``module`` imports, at any depth (lazy ones too): ``import
    bayesnas.x``, ``from bayesnas.x import y``, ``from bayesnas import x`` and relative forms."""
    found: set[str] = set()
    # the package a relative import starts from: the module's own (``__init__`` or not)
    here = ["bayesnas", *module.relative_to(package).with_suffix("").parts][:-1]
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found |= {s for a in node.names if (s := _stage_of(a.name, package))}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here[: len(here) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # ``from bayesnas import search``: the name itself may be the stage
                target = f"{base}.{alias.name}" if base == "bayesnas" else base
                if (s := _stage_of(target, package)) is not None:
                    found.add(s)
    return found


def space_internals(module: Path, package: Path = PACKAGE) -> set[str]:
    """The modules of one space's own folder (``bayesnas.spaces.<name>...``) that ``module``
    imports: outside spaces/, a space is reached through its record and hooks only."""
    folders = {d.name for d in (package / "spaces").iterdir() if (d / "__init__.py").is_file()}
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[:2] == ["bayesnas", "spaces"] and len(parts) > 2 and parts[2] in folders:
                found.add(".".join(parts[:3]))
    return found


def violations(package: Path = PACKAGE) -> list[str]:
    """Every wrong-way import, every circle between two stages under ``package``, and every
    import of a space's own folder from outside spaces/."""
    problems, edges = [], set()
    for module in sorted(package.rglob("*.py")):
        own = stage(module, package)
        if own != "spaces" and (inside := space_internals(module, package)):
            problems.append(f"{module.relative_to(package)} imports {sorted(inside)}")
        imported = imported_stages(module, package) - {own}
        forbidden = set(NEVER.get(own, ())) & imported
        if own not in ENTRY_POINTS and STAGES_BELOW_CLI in imported:
            forbidden.add(STAGES_BELOW_CLI)
        if forbidden:
            problems.append(f"{module.relative_to(package)} imports {sorted(forbidden)}")
        edges |= {(own, other) for other in imported}
    for a, b in sorted(edges):
        if a < b and (b, a) in edges:
            problems.append(f"{a} and {b} import each other")
    return problems


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small_and_says_what_it_is(module: Path) -> None:
    lines = len(module.read_text().splitlines())
    assert lines <= MAX_LINES, f"{module.name} has {lines} lines; split it by concept"
    if module.name != "__main__.py":
        assert ast.get_docstring(ast.parse(module.read_text())), f"{module} has no docstring"


def test_imports_follow_the_flow_without_circles() -> None:
    assert violations() == []


PLANTS = {  # issue 25: each of these once went unnoticed
    "from-bayesnas-import": {"data/batches.py": "from bayesnas import search\n"},
    "relative": {"data/batches.py": "from ..selection import rank\n"},
    "cli-below-the-cli": {"report/page.py": "import bayesnas.cli\n"},
    "data-to-train": {"data/batches.py": "from bayesnas.train import config\n"},
    "space-internals": {"report/page.py": "from bayesnas.spaces.nb201.cell import OPS\n"},
    "space-folder": {"search/metrics.py": "from bayesnas.spaces import darts\n"},
    "circle": {
        "progress.py": "import bayesnas.errors\n",
        "errors.py": "import bayesnas.progress\n",
    },
}


@pytest.mark.parametrize("plant", list(PLANTS))
def test_a_planted_wrong_way_import_is_caught(plant: str, tmp_path: Path) -> None:
    copy = Path(
        shutil.copytree(
            PACKAGE, tmp_path / "bayesnas", ignore=shutil.ignore_patterns("__pycache__")
        )
    )
    assert violations(copy) == []
    for relative, line in PLANTS[plant].items():
        with open(copy / relative, "a") as handle:
            handle.write(line)
    assert violations(copy), f"{plant} was not caught"
