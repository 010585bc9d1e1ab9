"""The Pyro program: one model and guide per space, a finite Eq. 15 loss that trains both."""

from __future__ import annotations

import pytest
import torch

from bayesnas.config import SearchConfig
from bayesnas.program import build_program


@pytest.mark.parametrize(
    ("space", "options"),
    [("nb201", {"channels": 4, "cells": 1}), ("resnet", {"width": 4, "blocks": 1})],
)
def test_loss_reaches_weights_and_gate_logits(space: str, options: dict) -> None:
    torch.manual_seed(0)
    config = SearchConfig(space=space, space_options=options)
    program = build_program(config, num_classes=3, in_channels=1, num_data=100)
    images, labels = torch.randn(6, 1, 8, 8), torch.randint(0, 3, (6,))
    loss = program.loss(images, labels)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert program.guide.gate_logits.grad is not None
    assert program.guide.gate_logits.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in program.net.parameters())


def test_uniform_sampler_freezes_q() -> None:
    config = SearchConfig(
        space="nb201", space_options={"channels": 4, "cells": 1}, sampler="uniform"
    )
    program = build_program(config, num_classes=3, in_channels=1, num_data=100)
    assert not program.guide.gate_logits.requires_grad
    assert torch.equal(program.guide.gate_logits, torch.zeros_like(program.guide.gate_logits))
    assert float(program.kl()) == pytest.approx(0.0, abs=1e-6)  # q is the uniform prior
