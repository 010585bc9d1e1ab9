"""The search split (train/validation indices) and batch serving of in-memory image tensors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from bayesnas.data.augment import augment, checked_augmentation, normalize, per_channel
from bayesnas.data.sources import DatasetInfo
from bayesnas.errors import UserError


def split_sizes(num_examples: int, val_fraction: float) -> dict[str, int]:
    """The most search-train and validation examples a split of ``num_examples`` can hold."""
    num_val = min(max(round(num_examples * val_fraction), 1), num_examples - 1)
    return {"train_size": num_examples - num_val, "val_size": num_val}


def search_split(
    num_examples: int,
    val_fraction: float = 0.5,
    seed: int = 0,
    train_size: int | None = None,
    val_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split example indices into disjoint, sorted search-train and validation parts, seeded."""
    if num_examples < 2:
        raise UserError(f"cannot split {num_examples} examples into search-train and validation")
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction must be between 0 and 1 (exclusive), not {val_fraction}")
    parts = split_sizes(num_examples, val_fraction)
    for key, cap in (("train_size", train_size), ("val_size", val_size)):
        if cap is not None and not 1 <= cap <= parts[key]:
            raise UserError(
                f"{key} {cap} is impossible: val_fraction {val_fraction} of {num_examples} "
                f"examples leaves {parts[key]} for that part; choose 1..{parts[key]}"
            )
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))
    train = order[: parts["train_size"]][:train_size]
    val = order[parts["train_size"] :][:val_size]
    return train.sort().values, val.sort().values


def held_out_indices(
    num_examples: int, val_fraction: float = 0.5, seed: int = 0, val_size: int | None = None
) -> torch.Tensor:
    """The validation part's examples beyond ``val_size`` (sorted): held out from the weights
    (search-train) and from the ranking (the first ``val_size``), as ``search_split`` draws them."""
    parts = split_sizes(num_examples, val_fraction)
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed))
    rest = order[parts["train_size"] :]
    return rest[len(rest) if val_size is None else val_size :].sort().values


def _epoch_order(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """Return the shuffled example order of one epoch, fixed by (seed, epoch) alone."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.randperm(num_examples, generator=torch.Generator().manual_seed(int(state)))


class Batches:
    """Batch bookkeeping shared by in-memory and folder data: epoch order, resume, eval order."""

    augmentation: dict[str, int | bool] | None

    def __len__(self) -> int:
        raise NotImplementedError

    def steps_per_epoch(self, batch_size: int) -> int:
        """Count the full batches in one epoch (the last partial batch is dropped)."""
        if not 1 <= batch_size <= len(self):
            raise UserError(
                f"batch size {batch_size} must be between 1 and the {len(self)} examples it draws "
                "from; lower the batch size or use more data"
            )
        return len(self) // batch_size

    def train_batches(
        self,
        batch_size: int,
        epoch: int,
        seed: int,
        start_step: int = 0,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Serve one epoch in the order fixed by (seed, epoch), from batch `start_step` on.
        ``shard`` (rank, world size): serve only that rank's equal part of every batch."""
        steps = self.steps_per_epoch(batch_size)
        if not 0 <= start_step <= steps:
            raise ValueError(f"start_step {start_step} is outside the epoch's 0..{steps} steps")
        order = _epoch_order(len(self), seed, epoch)[: steps * batch_size]
        rank, world = shard
        batches = [b.chunk(world)[rank] for b in order.split(batch_size)[start_step:]]
        return self._serve(batches, self.augmentation)

    def eval_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Serve all examples in order without augmentation, keeping the last partial batch."""
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, not {batch_size}")
        return self._serve(torch.arange(len(self)).split(batch_size), None)

    def _serve(
        self, batches: Sequence[torch.Tensor], settings: Mapping[str, int | bool] | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Turn batches of example indices into (images, labels) on the device."""
        raise NotImplementedError


class TensorData(Batches):
    """A labelled image set held on the device as uint8, served in batches (CIFAR, MNIST-likes)."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        info: DatasetInfo,
        device: torch.device | str,
        augmentation: Mapping[str, int | bool] | None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or labels.shape != images.shape[:1]:
            raise ValueError("TensorData needs uint8 images [N, C, H, W] and labels [N]")
        self.info = info
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        self.augmentation = checked_augmentation(augmentation)
        self._mean = per_channel(info.mean, self.device)
        self._std = per_channel(info.std, self.device)

    def __len__(self) -> int:
        return len(self.labels)

    def _serve(
        self, batches: Sequence[torch.Tensor], settings: Mapping[str, int | bool] | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Gather each batch on the device as normalised floats, augmented if `settings` say so."""
        for index in batches:
            index = index.to(self.device)
            images, labels = self.images[index], self.labels[index]
            if settings is None:
                yield normalize(images, self._mean, self._std), labels
            else:
                pad, flip, cutout = (
                    int(settings["pad"]),
                    bool(settings["flip"]),
                    int(settings["cutout"]),
                )
                yield (
                    augment(
                        images, pad=pad, flip=flip, cutout=cutout, mean=self._mean, std=self._std
                    ),
                    labels,
                )
