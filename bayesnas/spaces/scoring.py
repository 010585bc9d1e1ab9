"""Scoring one sub-network on held-out data: a hard architecture on the shared weights, or a
standalone module (a fine-tuned sub-network)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.spaces.base import SuperNet

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def evaluate_forward(
    module: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    batches: Batches,
    autocast: bool = False,
) -> dict[str, float]:
    """Accuracy and mean NLL of ``forward`` with ``module``'s BatchNorm in eval mode; restores
    its train mode."""
    was_training = module.training
    module.eval()
    nll, correct, count = torch.zeros(()), torch.zeros((), dtype=torch.long), 0
    try:
        for images, labels in batches:
            with torch.autocast(images.device.type, torch.bfloat16, enabled=autocast):
                logits = forward(images).float()
            nll = nll + F.cross_entropy(logits, labels, reduction="sum")
            correct = correct + (logits.argmax(1) == labels).sum()
            count += labels.numel()
    finally:
        module.train(was_training)
    if count == 0:
        return {"accuracy": float("nan"), "nll": float("nan"), "images": 0}
    return {"accuracy": float(correct) / count, "nll": float(nll) / count, "images": count}


def evaluate_architecture(
    net: SuperNet, arch: torch.Tensor, batches: Batches, autocast: bool = False
) -> dict[str, float]:
    """Accuracy and mean NLL of ``arch`` on the super-network's shared weights."""

    def forward(images: torch.Tensor) -> torch.Tensor:
        return net.forward_architecture(images, arch)

    return evaluate_forward(net, forward, batches, autocast)
