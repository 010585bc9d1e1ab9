"""Posterior draws by Predictive: exact one-hot architectures, the learned q and the baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bayesnas.config import SearchConfig
from bayesnas.errors import UserError
from bayesnas.program import build_program
from bayesnas.selection.posterior import Posterior, draw_architectures


def posterior(logits: torch.Tensor | None = None, space: str = "nb201") -> Posterior:
    options = {"channels": 4, "cells": 1} if space == "nb201" else {"width": 4, "blocks": 1}
    config = SearchConfig(space=space, space_options=options)
    program = build_program(config, num_classes=3, in_channels=3, num_data=100)
    if logits is not None:
        with torch.no_grad():
            program.guide.gate_logits.copy_(logits)
    return Posterior(Path("."), config, program, {})


def test_a_sharp_posterior_draws_its_mode() -> None:
    logits = torch.full((6, 5), -20.0)
    logits[:, 3] = 20.0  # every edge: nor_conv_3x3
    archs, log_q = draw_architectures(posterior(logits), 8)
    assert archs.shape == (8, 6, 5) and torch.equal(archs.sum(-1), torch.ones(8, 6))
    assert bool((archs.argmax(-1) == 3).all()) and torch.allclose(log_q, torch.zeros(8), atol=1e-4)


def test_uniform_baseline_ignores_the_learned_q_and_seeds_repeat() -> None:
    logits = torch.full((6, 5), -20.0)
    logits[:, 3] = 20.0
    archs, log_q = draw_architectures(posterior(logits), 200, sampler="uniform", seed=1)
    share = archs.mean(0)  # each op about 1/5 of the draws on each edge
    assert float((share - 0.2).abs().max()) < 0.12 and bool((log_q < -10).any())
    again, _ = draw_architectures(posterior(logits), 200, sampler="uniform", seed=1)
    assert torch.equal(archs, again)


def test_fixed_dropout_needs_channel_gates() -> None:
    with pytest.raises(UserError, match="fixed-dropout"):
        draw_architectures(posterior(), 4, sampler="fixed-dropout")
    archs, _ = draw_architectures(posterior(space="resnet"), 50, sampler="fixed-dropout", seed=0)
    assert set(archs.unique().tolist()) <= {0.0, 1.0}
