"""Scoring a candidate after a few fine-tuning steps of its inherited weights.

Inherited weights were trained inside the super-network beside every other op, so a cell the
posterior seldom drew scores low with them even when it trains well (docs/benchmarks.md,
"Ranking"). ``fine_tuned`` runs a few SGD steps of the candidate's exact sub-network from its
inherited weights, on the same training batches for every candidate, so the held-out score
that follows compares cells after equal training rather than by how much the super-network
used them. BatchNorm statistics are the fine-tuned network's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.spaces import SuperNet
from bayesnas.spaces.subnet import build_subnet

Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]


@dataclass(frozen=True)
class FineTune:
    """SGD with Nesterov momentum, cosine learning rate from ``lr`` to 0 over ``steps``."""

    steps: int
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4


def _endless(batches: Batches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The training batches, epoch after epoch in the same order."""
    while True:
        served = 0
        for batch in batches():
            served += 1
            yield batch
        if served == 0:
            raise ValueError("fine-tuning needs training batches; none were served")


def fine_tuned(net: SuperNet, arch: torch.Tensor, batches: Batches, tune: FineTune) -> nn.Module:
    """The exact sub-network of ``arch`` after ``tune.steps`` SGD steps from its inherited
    weights, in eval mode; the super-network is left as it was."""
    subnet = build_subnet(net, arch).train()
    optimizer = torch.optim.SGD(
        subnet.parameters(),
        lr=tune.lr,
        momentum=tune.momentum,
        nesterov=True,
        weight_decay=tune.weight_decay,
    )
    device = next(subnet.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)  # the same batches and augmentation for every candidate
        for step, (images, labels) in zip(range(tune.steps), _endless(batches), strict=False):
            for group in optimizer.param_groups:
                group["lr"] = 0.5 * tune.lr * (1 + math.cos(math.pi * step / tune.steps))
            loss = F.cross_entropy(subnet(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return subnet.eval()
