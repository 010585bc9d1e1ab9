"""--gate-data held-out: q's steps on validation images neither the weights nor the ranking see,
the weights' steps on search-train images only."""

from pathlib import Path

import pytest
import torch
from fakedata import write_cifar
from helpers import run_cli

from bayesnas.config import SearchConfig
from bayesnas.data.batches import held_out_indices, search_split
from bayesnas.search import held_out
from bayesnas.search.searcher import Searcher

pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_held_out_images_are_the_validation_part_beyond_val_size():
    train, val = search_split(100, 0.5, seed=3, val_size=20)
    rest = held_out_indices(100, 0.5, seed=3, val_size=20)
    assert len(rest) == 30
    assert not set(rest.tolist()) & (set(train.tolist()) | set(val.tolist()))
    _, whole_val = search_split(100, 0.5, seed=3)
    assert sorted(val.tolist() + rest.tolist()) == whole_val.tolist()
    assert len(held_out_indices(100, 0.5, seed=3)) == 0  # val_size unset: nothing left


def _searcher(tmp_path: Path, run: str = "run") -> Searcher:
    if not (tmp_path / "data").is_dir():
        write_cifar(tmp_path / "data", "cifar10", train=96, test=10)
    config = SearchConfig(
        dataset="cifar10", space_options={"channels": 4, "cells": 1}, epochs=2, batch_size=8,
        val_size=16, eval_size=8, device="cpu", data_root=str(tmp_path / "data"), gate_lr=0.5,
        warmup=0.0, gate_data="held-out",
    ).validated()  # fmt: skip
    (tmp_path / run).mkdir()
    return Searcher(config, tmp_path / run, progress=False)


def test_weights_step_leaves_q_and_q_steps_on_held_out_batches(tmp_path, monkeypatch):
    s = _searcher(tmp_path)
    assert s.held_out is not None and len(s.held_out) == 48 - 16
    seen = []
    original = held_out.gate_step

    def gate_step(searcher, data, index):
        seen.append(searcher.program.guide.gate_logits.detach().clone())
        weights = [w.detach().clone() for w in searcher.weights]
        original(searcher, data, index)
        assert all(torch.equal(a, b) for a, b in zip(weights, searcher.weights, strict=True))

    monkeypatch.setattr(held_out, "gate_step", gate_step)
    before = s.program.guide.gate_logits.detach().clone()
    weights = [w.detach().clone() for w in s.weights]
    images, labels = next(iter(s.train_data.train_batches(8, 0, 0)))
    s._schedule(0)
    s._step(images, labels, 0)
    assert len(seen) == 1 and torch.equal(seen[0], before)  # the weight step left q alone
    assert not torch.equal(s.program.guide.gate_logits.detach(), before)  # q's own step moved it
    assert not all(torch.equal(a, b) for a, b in zip(weights, s.weights, strict=True))


def test_val_size_that_leaves_no_held_out_images_is_one_line(tmp_path):
    write_cifar(tmp_path / "data", "cifar10", train=64, test=10)
    result = run_cli(
        "search", "--dataset", "cifar10", "--data-root", tmp_path / "data", "--channels", "4",
        "--cells", "1", "--gate-data", "held-out", "--epochs", "1", "--out", tmp_path / "r",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--val-size" in result.stderr and "Traceback" not in result.stderr


def test_a_resumed_held_out_search_is_exact(tmp_path, monkeypatch):
    """The held-out batch order is a function of the seed and the step: a search checkpointed
    after its first epoch and resumed ends where the uninterrupted one ends."""
    from bayesnas.progress import step_bar

    whole = _searcher(tmp_path, "a")
    whole.run()
    first = _searcher(tmp_path, "b")
    first._run_epoch(step_bar(first.total_steps, 0, show=False))
    saved = first.state_dict()
    resumed = _searcher(tmp_path, "c")
    resumed.load_state_dict(saved)
    resumed.run()
    assert torch.equal(whole.program.guide.gate_logits, resumed.program.guide.gate_logits)
    for a, b in zip(whole.weights, resumed.weights, strict=True):
        assert torch.equal(a, b)
