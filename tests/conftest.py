"""Shared fixtures: an isolated data environment and the real CIFAR-10 where it is available."""

from __future__ import annotations

from pathlib import Path

import pytest

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
