"""End-to-end searches on tiny data: run-directory contents, other spaces and data sets, exact
resume after SIGKILL, Ctrl-C, --force and --resume of a finished run."""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import pytest
import torch
from fakedata import write_cifar, write_imagenet
from helpers import cli_env, run_cli

import bayesnas
from bayesnas.config import SearchConfig
from bayesnas.errors import UserError
from bayesnas.search import run_search
from bayesnas.spaces.nb201.cell import OPS

TIMEOUT = 300  # seconds for one search subprocess; only a hang gets near it
EPOCHS = 3
METRIC_KEYS = {
    "epoch", "elbo", "nll", "kl", "train_acc", "val_acc", "lr", "tau", "gates", "images_per_s",
    "seconds",
}  # fmt: skip
_OP = "|".join(OPS)
NB201_MODE = re.compile(
    rf"^\|({_OP})~0\|\+\|({_OP})~0\|({_OP})~1\|\+\|({_OP})~0\|({_OP})~1\|({_OP})~2\|$"
)


def start_cli(*args: str | Path, cwd: Path, log: Path) -> subprocess.Popen:
    """Start a search in the background; its stdout and stderr go to ``log``.out/.err."""
    with log.with_suffix(".out").open("w") as out, log.with_suffix(".err").open("w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "bayesnas", *map(str, args)],
            cwd=cwd,
            env={**os.environ, **cli_env(cwd)},
            stdout=out,
            stderr=err,
        )


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def wait_for_checkpoint(
    run_dir: Path, proc: subprocess.Popen, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll checkpoint.pt (written atomically) until ``ready(state)``; fail if ``proc`` ends."""
    path, seen, deadline = run_dir / "checkpoint.pt", None, time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the search exited ({proc.returncode}) before the checkpoint the test waits for: "
                "it ran too fast to be interrupted mid-run; give it more steps"
            )
        stamp = path.stat().st_mtime_ns if path.is_file() else None
        if stamp is not None and stamp != seen:
            seen = stamp
            state = load(path)
            if ready(state):
                return state
        time.sleep(0.02)  # polling interval on file state, not a synchronisation delay
    pytest.fail(f"no suitable checkpoint in {run_dir} within {TIMEOUT} s")


def assert_same_posterior(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["net"].keys() == b["net"].keys()
    different = [k for k in a["net"] if not torch.equal(a["net"][k], b["net"][k])]
    assert not different, f"resumed weights differ from the uninterrupted run in {different}"
    assert torch.equal(a["gate_logits"], b["gate_logits"])
    assert a["mode"] == b["mode"]


def assert_same_metrics(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Epoch rows agree in everything but wall-clock figures."""
    clock = {"images_per_s", "seconds"}
    assert [{k: v for k, v in r.items() if k not in clock} for r in a] == [
        {k: v for k, v in r.items() if k not in clock} for r in b
    ]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fake CIFAR-10 of 384 training images: 192 search-train images, 6 steps of 32 per epoch."""
    root = tmp_path_factory.mktemp("fake-cifar10")
    write_cifar(root, "cifar10", train=384, test=10)
    return root


NB201_TINY = ("--space", "nb201", "--channels", "4", "--cells", "1")


def search_args(
    data_root: Path, *extra: str | Path, epochs: int = EPOCHS, space: tuple[str, ...] = NB201_TINY
) -> list[str | Path]:
    """A tiny search on CPU (seeded, checkpoint after every step) plus ``extra``."""
    return [
        "search", "--dataset", "cifar10", "--data-root", data_root, *space, "--batch-size", "32",
        "--val-size", "64", "--eval-size", "64", "--epochs", str(epochs), "--seed", "3",
        "--device", "cpu", "--checkpoint-minutes", "0", "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, fake_cifar10: Path) -> Path:
    """An uninterrupted search with ``search_args``: the run every resumed one must match."""
    base = tmp_path_factory.mktemp("reference")
    result = run_cli(*search_args(fake_cifar10, "--out", base / "run"), cwd=base)
    assert_ok(result)
    (base / "stdout.txt").write_text(result.stdout)
    return base / "run"


# -- end to end --------------------------------------------------------------------------------


def test_search_writes_a_complete_run_directory(reference_run: Path) -> None:
    run = reference_run
    saved = json.loads((run / "config.json").read_text())
    config = saved["config"]
    assert config["dataset"] == "cifar10" and config["space"] == "nb201"
    assert config["space_options"] == {"channels": 4, "cells": 1}
    assert config["epochs"] == EPOCHS and config["batch_size"] == 32 and config["seed"] == 3
    assert SearchConfig.from_json(config).validated().epochs == EPOCHS
    versions = saved["versions"]
    assert versions["torch"] == torch.__version__
    assert versions["pyro"] == pyro.__version__
    assert versions["bayesnas"] == bayesnas.__version__
    assert versions["device"].startswith("cpu")

    rows = metrics(run)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    for row in rows:
        assert row.keys() >= METRIC_KEYS, METRIC_KEYS - row.keys()
        for key in ("elbo", "nll", "kl", "lr", "tau", "images_per_s", "seconds"):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (key, row[key])
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["val_acc"] <= 1
        assert row["nll"] > 0 and row["kl"] >= 0 and row["elbo"] < 0
        assert row["lr"] >= 0 and row["tau"] == 1.0
        assert row["images_per_s"] > 0 and row["seconds"] > 0
        edges = row["gates"]["edges"]
        assert len(edges) == 6
        for edge in edges:
            assert set(edge["probs"]) == set(OPS)
            assert sum(edge["probs"].values()) == pytest.approx(1.0, abs=1e-5)
            assert 0 <= edge["entropy"] <= math.log(len(OPS)) + 1e-6
        assert NB201_MODE.match(row["gates"]["mode"]), row["gates"]["mode"]
    assert [r["lr"] for r in rows] == sorted((r["lr"] for r in rows), reverse=True)
    images = [r["images_per_s"] * r["seconds"] for r in rows]
    assert images == pytest.approx([192] * EPOCHS)  # all of each epoch's images ...

    checkpoint = load(run / "checkpoint.pt")
    assert checkpoint["kind"] == "checkpoint"
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"]) == (EPOCHS, 0)

    posterior = load(run / "posterior.pt")
    assert posterior["kind"] == "posterior"
    assert posterior["config"] == config
    assert posterior["net"] and all(isinstance(t, torch.Tensor) for t in posterior["net"].values())
    assert posterior["gate_logits"].shape == (6, len(OPS))
    assert NB201_MODE.match(posterior["mode"]), posterior["mode"]
    assert posterior["mode"] == rows[-1]["gates"]["mode"]
    assert posterior["dataset"]["name"] == "cifar10" and posterior["dataset"]["num_classes"] == 10
    assert posterior["dataset"]["train_images"] == 192
    assert posterior["dataset"]["val_images"] == 64
    assert 0 <= posterior["mode_val_acc"] <= 1
    # ... in all of each epoch's training time: the epochs' seconds add up to the run's (which
    # excludes only the final scoring), however often the search checkpointed mid-epoch
    assert sum(r["seconds"] for r in rows) == pytest.approx(posterior["seconds"], rel=0.01)
    stdout = (run.parent / "stdout.txt").read_text()
    assert f"posterior mode: {posterior['mode']}" in stdout


def test_resnet_search(tmp_path: Path, fake_cifar10: Path) -> None:
    run = tmp_path / "run"
    space = ("--space", "resnet", "--width", "4", "--blocks", "1")
    result = run_cli(*search_args(fake_cifar10, "--out", run, epochs=1, space=space), cwd=tmp_path)
    assert_ok(result)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["space"] == "resnet" and config["space_options"] == {"width": 4, "blocks": 1}
    (row,) = metrics(run)
    groups = row["gates"]["groups"]
    assert len(groups) == 3 * 1 * 2 * 2  # stages x blocks x branches x convs
    for group in groups:
        assert 0 < group["keep"] < 1, group
        assert group["entropy"] >= 0 and group["channels"] >= 1
    assert 0 <= row["gates"]["expected_channels_dropped"] <= 1
    posterior = load(run / "posterior.pt")
    assert posterior["kind"] == "posterior" and posterior["space"] == "resnet"
    assert posterior["gate_logits"].shape == (len(groups),)
    assert re.match(r"^s1: .* \| s2: .* \| s3: .*$", posterior["mode"]), posterior["mode"]


def test_uniform_single_path_search(tmp_path: Path, fake_cifar10: Path) -> None:
    """`search --sampler uniform`: q never moves, no mode is claimed, its paths can be ranked."""
    run = tmp_path / "run"
    result = run_cli(*search_args(fake_cifar10, "--out", run, "--sampler", "uniform"), cwd=tmp_path)
    assert_ok(result)
    assert "uniformly trained" in result.stdout and "posterior mode" not in result.stdout
    assert torch.count_nonzero(load(run / "posterior.pt")["gate_logits"]) == 0
    result = run_cli("sample", "--run", run, "--n", "4", "--top-k", "1", "--sampler", "uniform",
                     "--device", "cpu", "--no-progress", cwd=tmp_path)  # fmt: skip
    assert_ok(result)
    assert (run / "best_of_k-uniform.json").is_file()


def test_diverged_search_stops_before_saving(
    tmp_path: Path, fake_cifar10: Path, one_thread: None
) -> None:
    """A loss that is no longer finite ends the search with a user error; nothing NaN is kept."""
    run = tmp_path / "run"
    config = tiny_config("cifar10", fake_cifar10, epochs=2, lr=1000.0)  # the largest rate allowed
    with pytest.raises(UserError, match="loss became .* in epoch 1 .* lower --lr"):
        run_search(config, run, progress=False)
    assert not (run / "checkpoint.pt").exists() and not (run / "posterior.pt").exists()
    assert not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text()


def tiny_config(dataset: str, data_root: Path, **changes: Any) -> SearchConfig:
    base = SearchConfig(
        dataset=dataset,
        space="nb201",
        space_options={"channels": 4, "cells": 1},
        epochs=1,
        batch_size=16,
        eval_size=16,
        device="cpu",
        data_root=str(data_root),
    )
    return base.with_updates(**changes)


def test_fake_cifar100_search(tmp_path: Path, isolated_data_env: Path, one_thread: None) -> None:
    write_cifar(tmp_path / "data", "cifar100", train=64, test=10)
    run = tmp_path / "run"
    summary = run_search(tiny_config("cifar100", tmp_path / "data"), run, progress=False)
    assert summary["dataset"]["num_classes"] == 100
    assert summary["path"] == run / "posterior.pt"
    assert [r["epoch"] for r in metrics(run)] == [1]
    posterior = load(run / "posterior.pt")
    assert posterior["net"]["head.4.weight"].shape[0] == 100
    assert NB201_MODE.match(posterior["mode"])


def test_fake_imagenet_search(tmp_path: Path, isolated_data_env: Path, one_thread: None) -> None:
    # SearchConfig has no image size: ImageNet is always cropped to 224 pixels (here up-sampled
    # from 40-48 pixel JPEGs), so this search is slow-ish but small.
    write_imagenet(tmp_path / "data", train=8, val=2)
    run = tmp_path / "run"
    config = tiny_config("imagenet", tmp_path / "data", batch_size=4, workers=0)
    summary = run_search(config, run, progress=False)
    assert summary["dataset"]["num_classes"] == 3
    assert summary["dataset"]["train_images"] + summary["dataset"]["val_images"] == 24
    (row,) = metrics(run)
    assert 0 <= row["val_acc"] <= 1
    posterior = load(run / "posterior.pt")
    assert posterior["net"]["head.4.weight"].shape[0] == 3
    assert NB201_MODE.match(posterior["mode"])


def test_real_cifar10_search(tmp_path: Path, cifar10_root: Path) -> None:
    run = tmp_path / "run"
    result = run_cli(
        "search", "--dataset", "cifar10", "--data-root", cifar10_root, "--train-size", "256",
        "--val-size", "256", "--channels", "4", "--cells", "1", "--epochs", "1",
        "--batch-size", "32", "--device", "cpu", "--no-progress", "--out", run, cwd=tmp_path,
    )  # fmt: skip
    assert_ok(result)
    (row,) = metrics(run)
    assert isinstance(row["val_acc"], float) and 0 <= row["val_acc"] <= 1
    assert row["val_images"] == 256
    assert load(run / "posterior.pt")["dataset"]["train_images"] == 256


# -- interruption and resume -------------------------------------------------------------------


def test_resume_after_sigkill_is_exact(
    tmp_path: Path, fake_cifar10: Path, reference_run: Path
) -> None:
    run = tmp_path / "run"
    proc = start_cli(*search_args(fake_cifar10, "--out", run), cwd=tmp_path, log=tmp_path / "a")
    try:
        state = wait_for_checkpoint(
            run, proc, lambda s: s["epoch"] >= 1 and s["step_in_epoch"] >= 1
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL
    assert state["epoch"] < EPOCHS
    assert not (run / "posterior.pt").exists()

    result = run_cli("search", "--resume", run, "--no-progress", cwd=tmp_path)
    assert_ok(result)
    assert_same_posterior(load(reference_run / "posterior.pt"), load(run / "posterior.pt"))
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    assert_same_metrics(metrics(reference_run), rows)


def test_ctrl_c_checkpoints_and_resumes(
    tmp_path: Path, fake_cifar10: Path, reference_run: Path
) -> None:
    run, log = tmp_path / "run", tmp_path / "a"
    proc = start_cli(*search_args(fake_cifar10, "--out", run), cwd=tmp_path, log=log)
    try:
        wait_for_checkpoint(run, proc, lambda s: True)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    stderr = log.with_suffix(".err").read_text()
    assert proc.returncode == 130, stderr
    assert f"bayesnas search --resume {run}" in stderr
    assert "Traceback" not in stderr
    state = load(run / "checkpoint.pt")
    assert state["kind"] == "checkpoint" and state["epoch"] < EPOCHS
    assert not (run / "posterior.pt").exists()

    result = run_cli("search", "--resume", run, "--no-progress", cwd=tmp_path)
    assert_ok(result)
    assert_same_posterior(load(reference_run / "posterior.pt"), load(run / "posterior.pt"))
    assert [r["epoch"] for r in metrics(run)] == list(range(1, EPOCHS + 1))


def test_a_full_disk_before_the_first_checkpoint_says_there_is_none(
    tmp_path: Path, fake_cifar10: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 24 (8): with no checkpoint written, the line says so and how to start again; it
    neither calls a checkpoint intact nor sends the user to --resume."""
    run, write = tmp_path / "run", os.write

    def full(fd: int, data: bytes) -> int:  # the first checkpoint finds the disk full
        if ".checkpoint.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(fd, data)

    monkeypatch.setattr(os, "write", full)
    result = run_cli(*search_args(fake_cifar10, "--out", run, epochs=1), cwd=tmp_path)
    monkeypatch.undo()
    lines = [line for line in result.stderr.splitlines() if not line.startswith("run directory")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("bayesnas: error: cannot write"), lines
    assert "no checkpoint was written yet" in lines[0] and "--force" in lines[0], lines[0]
    assert "intact" not in lines[0] and "--resume" not in lines[0], lines[0]
    assert not (run / "checkpoint.pt").exists()


def test_finished_run_resume_refused_and_force_starts_over(
    tmp_path: Path, fake_cifar10: Path, reference_run: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    posterior_before = (run / "posterior.pt").read_bytes()

    refused = run_cli("search", "--resume", run, "--no-progress", cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "finished" in refused.stderr and "Traceback" not in refused.stderr
    assert (run / "posterior.pt").read_bytes() == posterior_before

    assert_ok(run_cli(*search_args(fake_cifar10, "--out", run, "--force", epochs=1), cwd=tmp_path))
    assert json.loads((run / "config.json").read_text())["config"]["epochs"] == 1
    assert [r["epoch"] for r in metrics(run)] == [1]
    assert load(run / "checkpoint.pt")["epoch"] == 1
    assert load(run / "posterior.pt")["config"]["epochs"] == 1
