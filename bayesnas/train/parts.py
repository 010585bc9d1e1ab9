"""The pieces of final training a loop uses: data, network, its outputs and evaluation.

The network is built from its spec (or read from an export to fine-tune); ``outputs`` returns
the main logits and, for a DARTS evaluation network with an auxiliary head in training, the
auxiliary logits too, so one loop trains every space.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.data import DatasetInfo, TensorData, dataset_info, load_arrays, resolve_data_root
from bayesnas.errors import UserError
from bayesnas.export import read_export
from bayesnas.spaces.subnet import subnet_from_spec, training_outputs
from bayesnas.train.config import TrainConfig


def cosine(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to 0 over ``total`` steps."""
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / total))


def build_model(config: TrainConfig, inherit: bool = True) -> nn.Module:
    """The network to train: fresh from its spec, or (fine-tune and ``inherit``) the export's
    network with its weights."""
    if config.mode == "fine-tune" and inherit:
        return read_export((config.source or {})["export"])[1].train()
    try:
        return subnet_from_spec(config.subnet)
    except ValueError as exc:
        raise UserError(f"cannot build the network: {exc}") from None


def outputs(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Main logits, and auxiliary logits where the network has an auxiliary head in training."""
    return training_outputs(model, images)


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], autocast: bool = False
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` in eval mode; restores its train mode."""
    was_training = model.training
    model.eval()
    correct: torch.Tensor | int = 0
    loss: torch.Tensor | float = 0.0
    count = 0
    try:
        for images, labels in batches:
            with torch.autocast(images.device.type, torch.bfloat16, enabled=autocast):
                logits = model(images).float()
            loss = loss + F.cross_entropy(logits, labels, reduction="sum")
            correct = correct + (logits.argmax(1) == labels).sum()
            count += labels.numel()
    finally:
        model.train(was_training)
    seen = max(count, 1)
    return {"accuracy": float(correct) / seen, "loss": float(loss) / seen, "images": count}


def training_data(
    config: TrainConfig, device: torch.device
) -> tuple[TensorData, TensorData, DatasetInfo]:
    """The full training split (or its first ``train_size`` images), the test split, the facts."""
    info = dataset_info(config.dataset)
    root = resolve_data_root(config.dataset, config.data_root)
    images, labels = load_arrays(config.dataset, root, train=True)
    if config.train_size is not None:
        if config.train_size > len(labels):
            raise UserError(
                f"--train-size {config.train_size} exceeds the {len(labels)} training images"
            )
        images, labels = images[: config.train_size], labels[: config.train_size]
    test_images, test_labels = load_arrays(config.dataset, root, train=False)
    return (
        TensorData(images, labels, info, device, config.augmentation),
        TensorData(test_images, test_labels, info, device, None),
        info,
    )
