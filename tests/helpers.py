"""Plain helpers shared by test files: the CLI as a subprocess, small super-networks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from bayesnas.spaces import create_space
from bayesnas.spaces.base import SuperNet

TIMEOUT = 300  # seconds for one CLI subprocess; only a hang gets near it


def cli_env(base: Path) -> dict[str, str]:
    """What a CLI run in ``base`` overrides: no data set or cache is found by accident.

    One intra-op thread: these tiny networks gain nothing from more, and on a busy machine
    spinning OpenMP threads make a search many times slower.
    """
    return {
        "BAYESNAS_DATA": str(base / "no-data"),
        "XDG_CACHE_HOME": str(base / "no-cache"),
        "HOME": str(base / "home"),
        "OMP_NUM_THREADS": "1",
    }


def run_cli(*args: str | Path, cwd: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``python -m bayesnas ARGS`` in ``cwd`` as a real process, in ``cli_env(cwd)``."""
    return subprocess.run(
        [sys.executable, "-m", "bayesnas", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **cli_env(cwd)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def supernet(space: str, seed: int = 0, **config) -> SuperNet:
    """A small super-network with random BN affines and running statistics, in eval mode."""
    torch.manual_seed(seed)
    net = create_space(space, **config)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.normal_(module.bias, 0.0, 0.3)
    net.train()
    with torch.no_grad():
        for _ in range(3):  # train-mode forwards with per-example gates move the running stats
            images = torch.randn(4, 3, 8, 8) * 2 + 0.5
            if net.layout.kind == "categorical":
                gates = torch.softmax(3 * torch.randn(4, *net.layout.shape), -1)
            else:
                gates = (torch.rand(4, *net.layout.shape) < 0.7).float()
            net(images, gates)
    return net.eval()


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def resnet_arch(net: SuperNet, keep: float, seed: int) -> torch.Tensor:
    """Random channel gates; block 1 loses branch 1 (no inputs) and branch 2's middle layer."""
    torch.manual_seed(seed)
    arch = (torch.rand(net.layout.shape) < keep).float()
    arch[net.offsets[0] : net.offsets[1]] = 0
    arch[net.offsets[3] : net.offsets[4]] = 0
    return arch
