"""`bayesnas train` end to end on a tiny generated CIFAR-10: the run directory and result.json,
an --arch baseline, fine-tuning a search's export, bad input, and exact resume after SIGKILL
and SIGTERM."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
from fakedata import write_cifar
from helpers import cli_env

import bayesnas
from bayesnas.cli import main
from bayesnas.config import SearchConfig
from bayesnas.data import load_arrays
from bayesnas.rundir import find_run
from bayesnas.search import run_search
from bayesnas.selection.sample import SampleConfig, sample
from bayesnas.train import build_model
from bayesnas.train.config import default_run_dir, resolve_config

TIMEOUT = 300  # seconds for one training subprocess; only a hang gets near it
EPOCHS = 4
ALL_CONV3 = (  # the all-conv3x3 baseline cell
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
METRIC_KEYS = {"epoch", "step", "train_loss", "train_acc", "lr", "images_per_s", "seconds"}


@contextlib.contextmanager
def isolated(cwd: Path) -> Iterator[None]:
    """Run in ``cwd`` with no data set or cache found by accident, on one intra-op thread (as the
    subprocesses: a busy 2-core machine makes spinning OpenMP threads many times slower)."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        for name, value in cli_env(cwd).items():
            mp.setenv(name, value)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def bayesnas_main(*args: str | Path, cwd: Path) -> tuple[int, str, str]:
    """``bayesnas ARGS`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with (
        isolated(cwd),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as exit_info,
    ):
        main([str(a) for a in args])
    return exit_info.value.code, out.getvalue(), err.getvalue()


def start_cli(*args: str | Path, cwd: Path, log: Path) -> subprocess.Popen:
    """Start ``bayesnas ARGS`` in the background; its stderr goes to ``log``."""
    with log.open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "bayesnas", *map(str, args)],
            cwd=cwd,
            env={**os.environ, **cli_env(cwd)},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def wait_for_checkpoint(run_dir: Path, proc: subprocess.Popen, epoch: int) -> None:
    """Poll checkpoint.pt (written atomically) until it is at ``epoch``; fail if ``proc`` ends."""
    path, seen, deadline = run_dir / "checkpoint.pt", None, time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training exited ({proc.returncode}) before its epoch-{epoch} checkpoint")
        stamp = path.stat().st_mtime_ns if path.is_file() else None
        if stamp is not None and stamp != seen:
            seen = stamp
            if load(path)["epoch"] >= epoch:
                return
        time.sleep(0.02)  # polling interval on file state, not a synchronisation delay
    pytest.fail(f"no epoch-{epoch} checkpoint in {run_dir} within {TIMEOUT} s")


def assert_same_training(a: Path, b: Path) -> None:
    """Bit-identical final weights, test results and per-epoch rows (wall-clock figures aside)."""
    wa = safetensors.torch.load_file(a / "weights.safetensors")
    wb = safetensors.torch.load_file(b / "weights.safetensors")
    assert wa.keys() == wb.keys()
    assert not [k for k in wa if not torch.equal(wa[k], wb[k])], "resumed weights differ"
    clock = {"images_per_s", "seconds"}
    ra, rb = (json.loads((r / "result.json").read_text()) for r in (a, b))
    assert {k: v for k, v in ra.items() if k != "seconds"} == {
        k: v for k, v in rb.items() if k != "seconds"
    }
    assert [{k: v for k, v in r.items() if k not in clock} for r in metrics(a)] == [
        {k: v for k, v in r.items() if k not in clock} for r in metrics(b)
    ]


def assert_user_error(code: int, err: str, *needles: str) -> None:
    lines = err.splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("bayesnas: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fake CIFAR-10: 256 training images (8 steps of 32 per epoch) and 64 test images."""
    root = tmp_path_factory.mktemp("fake-cifar10")
    write_cifar(root, "cifar10", train=256, test=64)
    return root


def train_args(data_root: Path, *extra: str | Path) -> list[str | Path]:
    """A tiny seeded all-conv3x3 baseline (C=4, N=1) on CPU, plus ``extra``."""
    return [
        "train", "--arch", ALL_CONV3, "--dataset", "cifar10", "--data-root", data_root,
        "--channels", "4", "--cells", "1", "--epochs", str(EPOCHS), "--batch-size", "32",
        "--seed", "3", "--device", "cpu", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, fake_cifar10: Path) -> tuple[Path, str]:
    """An uninterrupted training run: the run every resumed one must match; and its stdout."""
    base = tmp_path_factory.mktemp("reference")
    code, out, err = bayesnas_main(*train_args(fake_cifar10, "--out", base / "run"), cwd=base)
    assert code == 0, err
    return base / "run", out


@pytest.fixture(scope="module")
def search_run(tmp_path_factory: pytest.TempPathFactory, fake_cifar10: Path) -> Path:
    """A tiny finished search with a sampled export/rank-1/, as runs/search under its base."""
    base = tmp_path_factory.mktemp("searched")
    config = SearchConfig(
        dataset="cifar10",
        space_options={"channels": 4, "cells": 1},
        epochs=1,
        batch_size=32,
        eval_size=32,
        device="cpu",
        data_root=str(fake_cifar10),
    )
    run = base / "runs" / "search"
    with isolated(base):
        run_search(config, run, progress=False)
        sample(SampleConfig(run=run, n=3, top_k=1, val_size=32, device="cpu", progress=False))
    return run


# -- end to end --------------------------------------------------------------------------------


def test_arch_baseline_writes_a_complete_run(
    reference: tuple[Path, str], fake_cifar10: Path
) -> None:
    run, stdout = reference
    saved = json.loads((run / "config.json").read_text())
    assert saved["command"] == "train"
    assert saved["config"]["architecture"] == ALL_CONV3
    assert saved["config"]["augmentation"] == {"pad": 4, "flip": True, "cutout": 0}
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    assert all(set(r) == METRIC_KEYS for r in rows)
    assert rows[-1]["step"] == 8 * EPOCHS and 0 < rows[-1]["lr"] < rows[0]["lr"] < 0.05
    assert load(run / "checkpoint.pt")["epoch"] == EPOCHS

    result = json.loads((run / "result.json").read_text())
    assert result["mode"] == "from-scratch" and result["source"] == {"run": None, "rank": None}
    assert (result["architecture"], result["space"], result["dataset"]) == (
        ALL_CONV3,
        "nb201",
        "cifar10",
    )
    assert (result["epochs"], result["test_images"], result["train_images"]) == (EPOCHS, 64, 256)
    assert (
        stdout.strip()
        .splitlines()[-1]
        .startswith(f"test accuracy: {result['test_accuracy']:.2%} on 64 test images")
    )

    # the trained network loads as an export, and its accuracy on the *test* split is the result
    model = bayesnas.load_exported(run)
    assert sum(p.numel() for p in model.parameters()) == result["parameters"]
    images, labels = load_arrays("cifar10", fake_cifar10, train=False)
    with torch.no_grad():  # exports take images as users have them and normalise inside
        logits = model(images)
    accuracy = (logits.argmax(1) == labels).float().mean().item()
    assert accuracy == pytest.approx(result["test_accuracy"])
    description = json.loads((run / "architecture.json").read_text())
    assert description["dataset"]["test_images"] == 64
    assert description["dataset"]["image_size"] == 32


def test_fine_tune_starts_from_the_export(search_run: Path, fake_cifar10: Path) -> None:
    base = search_run.parent.parent
    export = search_run / "export" / "rank-1"
    config = resolve_config(run=search_run, fine_tune=True)
    assert (config.preset, config.epochs, config.lr) == ("finetune", 3, 0.01)
    inherited = build_model(config).state_dict()
    fresh = bayesnas.load_exported(export).net.state_dict()  # the bare network inside
    assert all(torch.equal(inherited[k], fresh[k]) for k in fresh)

    args = ("--epochs", "1", "--batch-size", "32", "--device", "cpu", "--no-progress")
    code, out, err = bayesnas_main("train", "--run", search_run, "--fine-tune", *args, cwd=base)
    assert code == 0, err
    run = base / "runs" / "train-search-rank1-finetune"
    result = json.loads((run / "result.json").read_text())
    assert result["mode"] == "fine-tune"
    assert result["source"] == {"run": str(search_run), "rank": 1}
    assert (
        result["architecture"]
        == json.loads((export / "architecture.json").read_text())["architecture"]
    )
    assert "test accuracy:" in out.splitlines()[-1]
    # a training run is no search: commands that default to the newest run skip it
    with isolated(base):
        assert find_run(None) == Path("runs") / "search"

    # from scratch (the default) re-initialises the same architecture
    code, _, err = bayesnas_main("train", "--run", search_run, *args, cwd=base)
    assert code == 0, err
    scratch = json.loads((base / "runs" / "train-search-rank1" / "result.json").read_text())
    assert scratch["mode"] == "from-scratch" and scratch["architecture"] == result["architecture"]


BAD_INPUT = [
    (("--arch", ALL_CONV3, "--preset", "bogus"), ("unknown preset", "'bogus'", "nb201")),
    (("--arch", "|nor_conv_3x3~0|+|bad~0|"), ("malformed --arch", "3 nodes")),
    (("--arch", "|nor_conv_3x3~0|+|nor_conv_3x3~1|none~1|+|none~0|none~1|none~2|"), ("~0",)),
    (("--arch", ALL_CONV3, "--epochs", "0"), ("--epochs", "1<=x<=100000")),
    (("--arch", ALL_CONV3, "--channels", "0"), ("--channels", "1<=x<=1024")),
    (("--arch", ALL_CONV3, "--data-root", "{tmp}/missing"), ("--data-root", "does not exist")),
    (("--arch", ALL_CONV3, "--dataset", "imagenet"), ("imagenet",)),
    (("--arch", ALL_CONV3, "--train-size", "9999"), ("--train-size 9999", "256")),
    (("--fine-tune",), ("--fine-tune", "--run")),
    (("--fine-tune", "--run", "{run}", "--arch", ALL_CONV3), ("--fine-tune", "--arch")),
    (("--from-scratch", "--fine-tune", "--run", "{run}"), ("exclude each other",)),
    (("--run", "{run}", "--rank", "4"), ("no export at rank 4", "bayesnas sample")),
    (("--run", "{tmp}"), ("not a bayesnas run",)),
    (("--run", "{run}", "--channels", "8"), ("--channels", "--arch")),
    ((), ("nothing to train", "--run", "--arch")),
    (("--resume", "{tmp}/nowhere"), ("not a bayesnas run", "nothing to resume")),
    (("--resume", "{done}", "--force"), ("--force", "--resume")),
    (("--resume", "{done}", "--epochs", "9"), ("--epochs", "cannot change")),
    (("--resume", "{done}"), ("finished", "result.json")),
    (("--resume", "{run}"), ("search run", "bayesnas search --resume")),
    (("--arch", ALL_CONV3, "--out", "{done}"), ("already holds files", "--force")),
]


@pytest.mark.parametrize(
    ("args", "needles"), BAD_INPUT, ids=[" ".join(a)[:40] or "nothing" for a, _ in BAD_INPUT]
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    fake_cifar10: Path,
    search_run: Path,
    reference: tuple[Path, str],
    args: tuple[str, ...],
    needles: tuple[str, ...],
) -> None:
    done = tmp_path / "done"
    shutil.copytree(reference[0], done)
    places = {"{tmp}": str(tmp_path), "{run}": str(search_run), "{done}": str(done)}
    args = tuple(next((a.replace(k, v) for k, v in places.items() if k in a), a) for a in args)
    if "--data-root" not in args and "--resume" not in args:
        args += ("--data-root", str(fake_cifar10))
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = bayesnas_main("train", *args, "--device", "cpu", "--no-progress", cwd=tmp_path)
    assert_user_error(code, err, *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a refused run left files"


# -- interruption and resume -------------------------------------------------------------------


def test_resume_after_sigkill_and_sigterm_is_exact(
    tmp_path: Path, fake_cifar10: Path, reference: tuple[Path, str]
) -> None:
    run, log = tmp_path / "run", tmp_path / "stderr.txt"
    proc = start_cli(*train_args(fake_cifar10, "--out", run), cwd=tmp_path, log=log)
    try:
        wait_for_checkpoint(run, proc, epoch=1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL and not (run / "result.json").exists()

    # resumed, then stopped by SIGTERM mid-epoch: a checkpoint, exit 143 and the resume hint
    proc = start_cli("train", "--resume", run, "--no-progress", cwd=tmp_path, log=log)
    try:
        wait_for_checkpoint(run, proc, epoch=2)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    stderr = log.read_text()
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].endswith(f"bayesnas train --resume {run}")
    assert "Traceback" not in stderr and not (run / "result.json").exists()
    assert load(run / "checkpoint.pt")["epoch"] < EPOCHS

    code, out, err = bayesnas_main("train", "--resume", run, "--no-progress", cwd=tmp_path)
    assert code == 0, err
    assert_same_training(reference[0], run)
    assert out.splitlines()[-1].split(" (")[0] == reference[1].splitlines()[-1].split(" (")[0]


def test_default_run_dir_names_the_network_size(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./runs: --arch alone
    config = resolve_config(arch=ALL_CONV3, dataset="cifar10", channels=8, cells=1)
    assert default_run_dir(config).name.startswith("train-cifar10-C8N1-")
