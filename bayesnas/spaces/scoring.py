"""Scoring one sub-network (a hard architecture on the shared weights) on held-out data."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from bayesnas.spaces.base import SuperNet


@torch.no_grad()
def evaluate_architecture(
    net: SuperNet,
    arch: torch.Tensor,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    autocast: bool = False,
) -> dict[str, float]:
    """Accuracy and mean NLL of ``arch`` with BatchNorm in eval mode; restores train mode."""
    was_training = net.training
    net.eval()
    nll, correct, count = torch.zeros(()), torch.zeros((), dtype=torch.long), 0
    try:
        for images, labels in batches:
            device_type = images.device.type
            with torch.autocast(device_type, torch.bfloat16, enabled=autocast):
                logits = net.forward_architecture(images, arch).float()
            nll = nll + F.cross_entropy(logits, labels, reduction="sum")
            correct = correct + (logits.argmax(1) == labels).sum()
            count += labels.numel()
    finally:
        net.train(was_training)
    if count == 0:
        return {"accuracy": float("nan"), "nll": float("nan"), "images": 0}
    return {"accuracy": float(correct) / count, "nll": float(nll) / count, "images": count}
