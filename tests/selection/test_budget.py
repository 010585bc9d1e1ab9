"""`sample --max-params/--max-flops`: rejection, counts, the bound on tries, Pareto flags."""

from pathlib import Path

import pytest
import torch

from bayesnas.config import build_config
from bayesnas.errors import UserError
from bayesnas.search import run_search
from bayesnas.selection.sample import SampleConfig, sample

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = [
    pytest.mark.skipif(not FMNIST.is_file(), reason="Debian's Fashion-MNIST absent"),
    pytest.mark.usefixtures("one_thread"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    config = build_config(
        None, dataset="fashion-mnist", space_options={"channels": 4, "cells": 1}, epochs=1,
        batch_size=64, train_size=256, val_size=128, eval_size=128, device="cpu",
    )  # fmt: skip
    path = tmp_path_factory.mktemp("budget") / "run"
    torch.set_num_threads(1)
    run_search(config, path, progress=False)
    return path


def _sample(run, **budget):
    config = SampleConfig(
        run=run, n=12, top_k=0, sampler="uniform", device="cpu", progress=False, **budget
    )
    return sample(config)[1]


def test_draws_over_budget_are_rejected_and_counted(run):
    free = _sample(run)
    params = sorted(r["params_m"] for r in free)
    limit = params[len(params) // 2]  # about half the space's draws are over it
    rows = _sample(run, max_params=limit)
    assert rows and all(r["params_m"] <= limit for r in rows)
    assert sum(r["draws"] for r in rows) == 12
    assert rows[0]["budget_rejected"] > 0
    assert rows[0]["budget_drawn"] == 12 + rows[0]["budget_rejected"]
    assert all("latency_ms_est" in r for r in rows)
    best = max(rows, key=lambda r: r["val_acc"])
    assert best["pareto_flops"] and best["pareto_params"]


def test_an_impossible_budget_is_one_line_after_bounded_tries(run):
    with pytest.raises(UserError, match="none of 240 draws fits the budget"):
        _sample(run, max_flops=1e-6)


def test_bad_budgets_are_refused():
    with pytest.raises(UserError, match="--max-params must be > 0"):
        SampleConfig(max_params=0).validated()
