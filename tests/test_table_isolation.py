"""The package never reads the NAS-Bench-201 judging table (../shared/nb201): a search that
reads the answer proves nothing. Only benchmarks/search_quality.py (outside the package) does.

Every file of the bayesnas package is searched for the table's names. The one allowed mention:
``bayesnas lookup`` names NAS-Bench-201's data set "cifar10-valid" as the official API's key,
in a user's own benchmark file read after a search (bayesnas/selection/lookup.py; its output
column ``cifar10_valid`` is not the table's ``cifar10_valid_acc`` and is not matched).
"""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayesnas"
FORBIDDEN = (
    re.compile(r"cifar10-valid", re.IGNORECASE),  # the table's file name
    re.compile(r"cifar10_valid_acc", re.IGNORECASE),  # its accuracy column
    re.compile(r"shared[\\/]+nb201", re.IGNORECASE),  # its folder, as a path string
    re.compile(r"""["']shared["']\s*[/,]\s*["']nb201["']""", re.IGNORECASE),  # Path parts
    re.compile(r"nb201[\\/]+lookup\.py", re.IGNORECASE),  # the table's reader
    re.compile(r"9de22769e20c854b72016ce1a80b977f"),  # the table's md5
)
# (file relative to the package, the exact stripped line): NB201's official API keys
ALLOWED = {
    ("selection/lookup.py", '("cifar10-valid", "valid-accuracy", "cifar10_valid"),'),
}


def package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_the_package_is_found() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in package_files()}
    assert {"__init__.py", "spaces/nb201/cell.py", "selection/sample.py"} <= names


def test_no_package_file_names_the_judging_table() -> None:
    found = []
    for path in package_files():
        relative = path.relative_to(PACKAGE).as_posix()
        text = path.read_bytes().decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if (relative, line.strip()) in ALLOWED:
                continue
            if any(pattern.search(line) for pattern in FORBIDDEN):
                found.append(f"bayesnas/{relative}:{number}: {line.strip()}")
    assert not found, (
        "the package names the NAS-Bench-201 judging table (only benchmarks/ may read it):\n"
        + "\n".join(found)
    )


def test_the_patterns_catch_the_ways_to_name_it() -> None:
    lines = (
        'TABLE = "../shared/nb201/cifar10-valid.tsv"',
        'root / "shared" / "nb201"',
        'Path("shared", "nb201", "x.tsv")',
        "import nb201/lookup.py",
        'name = "cifar10" + "_valid_acc"'.replace('" + "', ""),
    )
    for line in lines:
        assert any(pattern.search(line) for pattern in FORBIDDEN), line
