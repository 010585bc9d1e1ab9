"""Plain helpers shared by test files: the CLI in-process (or as a real process), small networks."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _inside(cwd: Path) -> Iterator[None]:
    """Run the body in ``cwd`` with ``cli_env(cwd)`` and one torch thread; restore all after."""
    saved_env, saved_dir, threads = dict(os.environ), Path.cwd(), torch.get_num_threads()
    os.environ.update(cli_env(cwd))
    os.chdir(cwd)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        os.chdir(saved_dir)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_num_threads(threads)


def run_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``bayesnas ARGS`` in-process, as ``main`` would for a user: exit status, stdout and
    stderr (a traceback, should one escape, is appended to stderr so assertions show it)."""
    from bayesnas.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = [str(a) for a in args]
    with _inside(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            code = -1
            err.write("Traceback (most recent call last):\n" + traceback.format_exc())
        else:
            code = 0
    return subprocess.CompletedProcess(["bayesnas", *argv], code, out.getvalue(), err.getvalue())


def cli(capsys: Any, *args: str | Path) -> tuple[int, str, str]:
    """Run ``bayesnas ARGS`` in-process under pytest's ``capsys``; (exit status, stdout, stderr)
    with a traceback, should one escape, appended to stderr as the user would see it."""
    from bayesnas.cli import main

    capsys.readouterr()
    crash = ""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        code, crash = -1, "Traceback (most recent call last):\n" + traceback.format_exc()
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err + crash


def run_process(
    *args: str | Path, cwd: Path, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess:
    """Run ``python -m bayesnas ARGS`` in ``cwd`` as a real process, in ``cli_env(cwd)`` (for
    what needs one: signals, the installed entry point)."""
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
