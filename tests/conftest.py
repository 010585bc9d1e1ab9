"""Shared fixtures: one intra-op thread, an isolated data environment, the real CIFAR-10.

Plain helper functions (the CLI as a subprocess, small super-networks) are in helpers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR10_TARBALL = SHARED_DATA / "cifar-10-python.tar.gz"


@pytest.fixture
def isolated_data_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point BAYESNAS_DATA away and the per-user cache at an empty folder; return that cache."""
    monkeypatch.delenv("BAYESNAS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    return tmp_path / "xdg-cache" / "bayesnas"


@pytest.fixture(scope="session")
def cifar10_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a scratch root holding the real CIFAR-10, extracted there from the shared tarball."""
    if not CIFAR10_TARBALL.is_file():
        pytest.skip(f"real CIFAR-10 tarball absent: {CIFAR10_TARBALL}")
    from bayesnas.data import load_arrays

    root = tmp_path_factory.mktemp("cifar10")
    (root / CIFAR10_TARBALL.name).symlink_to(CIFAR10_TARBALL)
    load_arrays("cifar10", root, train=False, download=False)
    return root


def _single_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """In-process runs on one intra-op thread, as the subprocesses (see ``helpers.cli_env``):
    tiny convolutions run fastest on one thread, and the test machine's CPU is shared."""
    yield from _single_thread()


@pytest.fixture(scope="module")
def one_thread_module() -> Iterator[None]:
    """``one_thread`` for a whole module (``pytestmark = pytest.mark.usefixtures(...)``)."""
    yield from _single_thread()
