"""The selection step: Predictive draws, pairing, ranking, files, export parity, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bayesnas.config import build_config
from bayesnas.errors import UserError
from bayesnas.search import run_search
from bayesnas.selection.posterior import draw_architectures, load_posterior
from bayesnas.selection.sample import SampleConfig, sample

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
needs_fmnist = pytest.mark.skipif(not FMNIST.is_file(), reason="Debian's Fashion-MNIST absent")


def _tiny_run(root: Path, space: str, options: dict) -> Path:
    config = build_config(
        None,
        dataset="fashion-mnist",
        space=space,
        space_options=options,
        epochs=1,
        batch_size=64,
        train_size=512,
        val_size=256,
        eval_size=256,
        gate_lr=1.0,
    )
    run_search(config, root, progress=False)
    return root


@pytest.fixture(scope="module")
def nb201_run(tmp_path_factory) -> Path:
    if not FMNIST.is_file():
        pytest.skip("Debian's Fashion-MNIST absent")
    return _tiny_run(tmp_path_factory.mktemp("nb") / "run", "nb201", {"channels": 4, "cells": 1})


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory) -> Path:
    if not FMNIST.is_file():
        pytest.skip("Debian's Fashion-MNIST absent")
    return _tiny_run(tmp_path_factory.mktemp("rn") / "run", "resnet", {"width": 4, "blocks": 1})


def test_predictive_draws_follow_the_guide(nb201_run):
    posterior = load_posterior(nb201_run, torch.device("cpu"))
    with torch.no_grad():
        posterior.program.guide.gate_logits.copy_(torch.randn(6, 5))
    archs, log_q = draw_architectures(posterior, 20000, "posterior", seed=3)
    assert archs.shape == (20000, 6, 5) and torch.equal(archs.sum(-1), torch.ones(20000, 6))
    probs = torch.softmax(posterior.program.guide.gate_logits, -1)
    assert torch.allclose(archs.mean(0), probs, atol=4 * (0.25 / 20000) ** 0.5)
    expected = (archs * probs.log()).sum((1, 2))
    assert torch.allclose(log_q, expected, atol=1e-5)


def test_resnet_draws_follow_keep_probabilities(resnet_run):
    posterior = load_posterior(resnet_run, torch.device("cpu"))
    with torch.no_grad():
        posterior.program.guide.gate_logits.uniform_(-2, 2)
    archs, _ = draw_architectures(posterior, 4000, "posterior", seed=1)
    layout = posterior.program.net.layout
    keep = torch.sigmoid(layout.expand_logits(posterior.program.guide.gate_logits))
    assert torch.allclose(archs.mean(0), keep, atol=4 * (0.25 / 4000) ** 0.5 + 1e-3)


def test_uniform_sampler_covers_the_space(nb201_run):
    posterior = load_posterior(nb201_run, torch.device("cpu"))
    archs, _ = draw_architectures(posterior, 30000, "uniform", seed=0)
    assert torch.allclose(archs.mean(0), torch.full((6, 5), 0.2), atol=0.015)
    ops = archs.argmax(-1)
    for edge in range(6):  # every op on every edge, and many distinct cells
        assert set(ops[:, edge].tolist()) == set(range(5))
    assert len({tuple(r) for r in ops.tolist()}) > 10000


def test_fixed_dropout_only_for_channel_gates(nb201_run, resnet_run):
    with pytest.raises(UserError, match="fixed-dropout"):
        sample(SampleConfig(run=nb201_run, n=2, top_k=0, sampler="fixed-dropout", progress=False))
    posterior = load_posterior(resnet_run, torch.device("cpu"))
    archs, _ = draw_architectures(posterior, 3000, "fixed-dropout", seed=0, drop_rate=0.3)
    assert abs(archs.mean().item() - 0.7) < 0.01


def test_sample_pairs_ranks_records_and_exports(nb201_run):
    import bayesnas

    run_dir, rows = sample(SampleConfig(run=nb201_run, n=12, top_k=2, progress=False))
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert sum(r["draws"] for r in rows) == 12
    accuracies = [r["val_acc"] for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)
    assert len({r["encoding"] for r in rows}) == len(rows)  # identical draws scored once
    curve = json.loads((run_dir / "best_of_k-posterior.json").read_text())["curve"]
    assert len(curve) == 12 and curve == sorted(curve) and curve[-1] == rows[0]["val_acc"]

    posterior = load_posterior(run_dir, torch.device("cpu"))
    net = posterior.program.net.eval()
    model = bayesnas.load_exported(run_dir / "export" / "rank-1")
    supernet = list(net.state_dict().values())
    for name, tensor in model.state_dict().items():  # pairing: the weights are the posterior's
        assert any(t.shape == tensor.shape and torch.equal(t, tensor) for t in supernet), name
    assert sum(p.numel() for p in model.parameters()) == round(rows[0]["params_m"] * 1e6)
    from bayesnas.data import build_search_data

    c = posterior.config
    _, val, _, _ = build_search_data(
        c.dataset,
        c.data_root,
        device=torch.device("cpu"),
        train_size=c.train_size,
        val_size=c.val_size,
        split_seed=c.seed,
    )
    correct = total = 0
    with torch.no_grad():
        # the exported model takes images as users have them (uint8) and normalises inside
        for images, labels in zip(val.images.split(256), val.labels.split(256), strict=True):
            correct += int((model(images).argmax(1) == labels).sum())
            total += labels.numel()
    assert correct / total == rows[0]["val_acc"]  # the table's accuracy, reproduced exactly

    before = (run_dir / "samples.jsonl").read_text().splitlines()
    sample(SampleConfig(run=nb201_run, n=5, top_k=0, sampler="uniform", seed=4, progress=False))
    after = (run_dir / "samples.jsonl").read_text().splitlines()
    assert after[: len(before)] == before and len(after) > len(before)
    assert (run_dir / "export" / "rank-1" / "weights.safetensors").is_file()  # top-k 0 keeps it
    assert all(json.loads(line)["sampler"] == "uniform" for line in after[len(before) :])
    assert (run_dir / "best_of_k-uniform.json").is_file()


def test_fine_tune_scoring_ranks_and_exports_the_tuned_weights(nb201_run):
    import bayesnas

    supernet = load_posterior(nb201_run, torch.device("cpu")).program.net
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    config = SampleConfig(run=nb201_run, n=4, top_k=1, fine_tune_steps=3, progress=False)
    _, rows = sample(config)
    assert [r["val_acc"] for r in rows] == sorted((r["val_acc"] for r in rows), reverse=True)
    assert all(r["fine_tune_steps"] == 3 and 0 <= r["inherited_val_acc"] <= 1 for r in rows)
    assert any(r["val_acc"] != r["inherited_val_acc"] for r in rows)  # the steps changed scores
    after = load_posterior(nb201_run, torch.device("cpu")).program.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # posterior.pt untouched
    exported = bayesnas.load_exported(nb201_run / "export" / "rank-1").state_dict().values()
    shared = list(before.values())
    assert not all(any(torch.equal(t, e) for t in shared) for e in exported)  # tuned weights
    assert json.loads((nb201_run / "export" / "rank-1" / "metrics.json").read_text()) == rows[0]


def test_recalibrated_batchnorm_restores_supernet_statistics(resnet_run):
    posterior = load_posterior(resnet_run, torch.device("cpu"))
    before = {k: v.clone() for k, v in posterior.program.net.state_dict().items()}
    _, rows = sample(
        SampleConfig(run=resnet_run, n=3, top_k=1, bn="recalibrate", bn_steps=2, progress=False)
    )
    after = load_posterior(resnet_run, torch.device("cpu")).program.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert rows[0]["bn"] == "recalibrate"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--n", "0"], "1<=x<=1000000"),
        (["--n", "3", "--top-k", "4"], "--top-k"),
        (["--sampler", "fixed-dropout"], "fixed-dropout"),
        (["--fine-tune-steps", "2", "--bn", "recalibrate"], "drop --bn recalibrate"),
    ],
)
def test_bad_input_is_one_line_exit_2(nb201_run, args, message):
    before = (
        (nb201_run / "samples.jsonl").read_bytes()
        if (nb201_run / "samples.jsonl").exists()
        else b""
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bayesnas",
            "sample",
            "--run",
            str(nb201_run),
            "--no-progress",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    after = (
        (nb201_run / "samples.jsonl").read_bytes()
        if (nb201_run / "samples.jsonl").exists()
        else b""
    )
    assert before == after


def test_no_run_and_unfinished_run(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bayesnas", "sample"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "no run found" in result.stderr
    unfinished = tmp_path / "runs" / "x"
    unfinished.mkdir(parents=True)
    (unfinished / "config.json").write_text("{}")
    result = subprocess.run(
        [sys.executable, "-m", "bayesnas", "sample"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "--resume" in result.stderr
