"""A real run directory for tests that read one: issue 24's tiny search, sampled and exported.

Tests that read a run take ``run_copy`` (a fresh copy of it to change) or ``real_run`` (the
shared original, read only) instead of writing their own idea of config.json, samples.jsonl or
architecture.json: a fake that passes while the real files fail is what issue 24 found.
A test module names this file a plugin, ``pytest_plugins = ["realrun"]``, and takes its fixtures.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import run_cli

DATA_ROOT = Path("/usr/share/datasets")  # Debian's Fashion-MNIST, read offline
FMNIST = DATA_ROOT / "fashion-mnist" / "train-images-idx3-ubyte.gz"
# issue 24's tiny configuration, smaller still (one epoch, 512 images), so that it takes seconds
SEARCH = (
    *("search", "--dataset", "fashion-mnist", "--space", "nb201", "--channels", "4"),
    *("--cells", "1", "--epochs", "1", "--train-size", "512", "--val-size", "256"),
    *("--eval-size", "256", "--batch-size", "64", "--data-root", str(DATA_ROOT)),
    *("--device", "cpu", "--no-progress"),
)
COMMANDS = (  # after the search: five candidates exported, one as ONNX, and the figures
    ("sample", "--n", "5", "--no-progress"),
    ("export", "--rank", "1"),
    ("plot",),
)


def _search_args(out: Path, *more: str) -> tuple[str, ...]:
    """`bayesnas search` with the real run's configuration into ``out``."""
    return (*SEARCH, "--out", str(out), *more)


@pytest.fixture(scope="session")
def search_args() -> Callable[..., tuple[str, ...]]:
    """The real run's `bayesnas search` arguments for an ``--out`` and more (a fixture, as a
    plugin module is not imported by tests)."""
    return _search_args


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run that `search`, `sample --n 5`, `export --rank 1` and `plot` leave, made once
    per session; tests read it and never change it."""
    if not FMNIST.is_file():
        pytest.skip(f"Debian's Fashion-MNIST absent: {FMNIST}")
    base = tmp_path_factory.mktemp("real-run")
    run = base / "RUN"
    for args in (_search_args(run), *((*c, "--run", str(run)) for c in COMMANDS)):
        done = run_cli(*args, cwd=base)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return run


@pytest.fixture
def run_copy(real_run: Path, tmp_path: Path) -> Path:
    """A copy of the real run for one test to change."""
    return Path(shutil.copytree(real_run, tmp_path / "RUN", symlinks=True))
