"""What decides q: presets that fit every data set, the weight warm-up on exact draws, the gate
schedule after it, and progressive pruning of ops that q has given up."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from fakedata import write_cifar

from bayesnas.config import PRESETS, SearchConfig, build_config
from bayesnas.data import DATASETS, dataset_info, search_split
from bayesnas.search import PRUNED_LOGIT, Searcher
from bayesnas.spaces.nb201.cell import CONV3, EDGES, OPS, SKIP
from bayesnas.spaces.nb201.mixture import NO_ROWS, ONLY, mixture_plan

SIZED = [name for name, values in PRESETS.items() if "train_size" in values]


@pytest.mark.parametrize("preset", SIZED)
@pytest.mark.parametrize("dataset", [d for d in DATASETS if dataset_info(d).train_images])
def test_every_sized_preset_fits_every_data_set(preset: str, dataset: str) -> None:
    config = build_config(preset, dataset=dataset)
    train, val = search_split(
        dataset_info(dataset).train_images,
        config.val_fraction,
        0,
        config.train_size,
        config.val_size,
    )
    assert len(train) == config.train_size <= PRESETS[preset]["train_size"]
    assert len(val) == config.val_size <= PRESETS[preset]["val_size"]


def test_quick_on_cifar10_takes_the_25000_images_the_split_holds() -> None:
    config = build_config("quick", dataset="cifar10")
    assert (config.train_size, config.val_size) == (25000, 10000)
    assert build_config("quick", dataset="cifar10", train_size=2000).train_size == 2000


def _searcher(tmp_path: Path, **changes) -> Searcher:
    write_cifar(tmp_path / "data", "cifar10", train=64, test=10)
    config = SearchConfig(
        dataset="cifar10",
        space_options={"channels": 4, "cells": 1},
        epochs=4,
        batch_size=8,
        eval_size=8,
        device="cpu",
        data_root=str(tmp_path / "data"),
        gate_lr=0.5,
        warmup=0.5,
        tau=1.0,
        tau_final=0.25,
    ).with_updates(**changes)
    return Searcher(config, tmp_path / "run", progress=False)


@pytest.mark.parametrize("draws", ["example", "batch"])
def test_warmup_trains_weights_on_exact_draws_with_q_frozen(
    tmp_path: Path, isolated_data_env: Path, draws: str
) -> None:
    searcher = _searcher(tmp_path, warmup_draws=draws)
    net = searcher.program.net
    seen: list[torch.Tensor] = []
    net.register_forward_pre_hook(lambda module, args: seen.append(args[1].detach().clone()))
    before = searcher.program.guide.gate_logits.detach().clone()
    images, labels = next(searcher.train_data.train_batches(8, 0, 0))
    assert searcher.warmup_steps == 8  # half of 4 epochs x 4 steps
    for step in range(6):
        searcher._schedule(step)
        searcher._step(images, labels, step)
    assert all(set(g.unique().tolist()) <= {0.0, 1.0} for g in seen)  # one op per edge
    shared = [torch.equal(g, g[:1].expand_as(g)) for g in seen]
    assert all(shared) if draws == "batch" else not any(shared)  # one path per batch or example
    assert not torch.equal(seen[0], seen[1]) or not torch.equal(seen[0], seen[-1])
    assert torch.equal(searcher.program.guide.gate_logits.detach(), before)
    assert searcher.optimizer.param_groups[1]["lr"] == 0.0


def test_relaxed_warmup_trains_weights_on_the_whole_mixture_with_q_frozen(
    tmp_path: Path, isolated_data_env: Path
) -> None:
    searcher = _searcher(tmp_path, warmup_draws="relaxed")
    net = searcher.program.net
    seen: list[torch.Tensor] = []
    net.register_forward_pre_hook(lambda module, args: seen.append(args[1].detach().clone()))
    before = searcher.program.guide.gate_logits.detach().clone()
    images, labels = next(searcher.train_data.train_batches(8, 0, 0))
    for step in range(3):
        assert searcher._schedule(step) == 1.0  # the start temperature until q learns
        searcher._step(images, labels, step)
    assert all(((g > 0) & (g < 1)).all() for g in seen)  # every op weighted, none exact
    assert torch.equal(searcher.program.guide.gate_logits.detach(), before)
    assert searcher.optimizer.param_groups[1]["lr"] == 0.0


def test_after_the_warmup_q_learns_from_relaxed_draws_on_its_own_schedule(
    tmp_path: Path, isolated_data_env: Path
) -> None:
    searcher = _searcher(tmp_path)
    start, last = searcher.warmup_steps, searcher.total_steps - 1
    assert searcher._schedule(start) == 1.0 and searcher.program.guide.relaxed
    assert searcher.optimizer.param_groups[1]["lr"] == 0.5  # the gate cosine starts here
    assert searcher._schedule(last) == pytest.approx(0.25)
    images, labels = next(searcher.train_data.train_batches(8, 0, 0))
    before = searcher.program.guide.gate_logits.detach().clone()
    searcher._schedule(start)
    searcher._step(images, labels, start)
    assert not torch.equal(searcher.program.guide.gate_logits.detach(), before)


def test_skip_dropout_acts_in_training_only_and_decays_to_zero(
    tmp_path: Path, isolated_data_env: Path
) -> None:
    searcher = _searcher(tmp_path, skip_dropout=0.5)
    net = searcher.program.net
    rates = []
    for step in (0, searcher.total_steps // 2, searcher.total_steps - 1):
        searcher._schedule(step)
        rates.append(net.skip_dropout)
    assert rates[0] == 0.5 and 0 < rates[1] < 0.5 and rates[2] == 0.0
    images = torch.randn(4, 3, 32, 32)
    skips = torch.zeros(4, len(EDGES), len(OPS))
    skips[..., SKIP] = 1.0  # every edge a skip: the cell is nothing but skips
    net.skip_dropout = 0.5
    net.train()
    dropped = [net(images, skips) for _ in range(2)]
    assert not torch.equal(dropped[0], dropped[1])  # fresh drops every forward
    net.eval()
    kept = net(images, skips)
    net.skip_dropout = 0.0
    assert torch.equal(kept, net(images, skips))  # no dropout outside training


def test_the_uniform_sampler_never_relaxes(tmp_path: Path, isolated_data_env: Path) -> None:
    searcher = _searcher(tmp_path, sampler="uniform")
    for step in (0, searcher.warmup_steps, searcher.total_steps - 1):
        searcher._schedule(step)
        assert not searcher.program.guide.relaxed
        assert not searcher.program.guide.shared_exact  # its draws stay one per example


def test_pruned_ops_get_probability_zero_and_stay_uncomputed(
    tmp_path: Path, isolated_data_env: Path
) -> None:
    searcher = _searcher(tmp_path, prune_below=0.05)
    logits = searcher.program.guide.gate_logits
    with torch.no_grad():
        logits.zero_()
        logits[0, CONV3] = 10.0  # edge 0: every other op far below 0.05
    searcher.epoch = 2  # epoch 3 ends after the warm-up (8 of 16 steps)
    images, labels = next(searcher.train_data.train_batches(8, 0, 0))
    searcher._schedule(searcher.warmup_steps)
    searcher._step(images, labels, searcher.warmup_steps)  # creates momentum for every logit
    searcher._prune()
    probs = torch.softmax(logits.detach(), -1)
    assert probs[0, CONV3] == 1.0 and (probs[0].count_nonzero() == 1)
    assert (logits.detach()[0, [0, 1, 2, 4]] == PRUNED_LOGIT).all()
    assert (probs[1:] > 0.05).all()  # undecided edges keep every op
    for step in range(3):
        searcher._step(images, labels, searcher.warmup_steps + 1 + step)
    assert (logits.detach()[0, [0, 1, 2, 4]] == PRUNED_LOGIT).all()
    gates = searcher.program.guide.posterior(8).rsample()
    plan = mixture_plan(gates)
    assert plan[0][CONV3] is ONLY and all(plan[0][op] is NO_ROWS for op in (1, 2, 4))


def test_no_pruning_during_the_warmup(tmp_path: Path, isolated_data_env: Path) -> None:
    searcher = _searcher(tmp_path, prune_below=0.05)
    with torch.no_grad():
        searcher.program.guide.gate_logits[0, CONV3] = 10.0
    searcher.epoch = 0  # epoch 1 ends inside the warm-up
    searcher._prune()
    assert (searcher.program.guide.gate_logits.detach() != PRUNED_LOGIT).all()
