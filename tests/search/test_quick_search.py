"""Acceptance: the offline quick search on real Fashion-MNIST finds a sub-network that works."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@pytest.mark.slow
@pytest.mark.skipif(not FMNIST.is_file(), reason="Debian's dataset-fashion-mnist is not installed")
def test_quick_preset_posterior_mode_reaches_85_percent(tmp_path):
    """A collapsed posterior (pooling and 'none' everywhere) stays far below 85 %."""
    run = tmp_path / "quick"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayesnas",
            "search",
            "--dataset",
            "fashion-mnist",
            "--space",
            "nb201",
            "--preset",
            "quick",
            "--out",
            str(run),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # spinning threads on a busy CPU: 4x slower
    )
    assert result.returncode == 0, result.stderr
    posterior = torch.load(run / "posterior.pt", weights_only=False)
    assert posterior["dataset"]["val_images"] == 10000
    assert posterior["mode_val_acc"] >= 0.85, posterior["mode"]
    ops = posterior["mode"].count("nor_conv")
    assert ops >= 3, f"posterior drifted to parameter-free ops: {posterior['mode']}"
