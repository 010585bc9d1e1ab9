"""Search data: the train/validation split and batch serving (augmented on the device)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import default_loader

from bayesnas.data.augment import (
    DEFAULT_AUGMENTATION,
    augment,
    checked_augmentation,
    cutout_square,
    normalize,
    per_channel,
)
from bayesnas.data.sources import (
    DatasetInfo,
    dataset_info,
    imagenet_folder,
    load_arrays,
    resolve_data_root,
)
from bayesnas.errors import UserError

if TYPE_CHECKING:
    from bayesnas.config import SearchConfig


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


def _epoch_order(num_examples: int, seed: int, epoch: int) -> torch.Tensor:
    """Return the shuffled example order of one epoch, fixed by (seed, epoch) alone."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.randperm(num_examples, generator=torch.Generator().manual_seed(int(state)))


class _Batches:
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


class TensorData(_Batches):
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
                yield augment(images, **settings, mean=self._mean, std=self._std), labels


class _Images(Dataset):
    """Image files with labels, decoded and transformed in DataLoader workers."""

    def __init__(self, samples: list[tuple[str, int]], transform: transforms.Compose) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(default_loader(path)), label


class FolderData(_Batches):
    """A subset of an ImageFolder tree (ImageNet) decoded by DataLoader workers, in batches."""

    def __init__(
        self,
        folder: ImageFolder,
        indices: torch.Tensor,
        info: DatasetInfo,
        device: torch.device | str,
        augmentation: Mapping[str, int | bool] | None,
        workers: int | None = None,
    ) -> None:
        self.info = info
        self.device = torch.device(device)
        self.augmentation = checked_augmentation(augmentation)
        if self.augmentation is not None and self.augmentation["pad"]:
            raise UserError("augmentation pad does not apply to image folders; set pad to 0")
        self.workers = min(8, os.cpu_count() or 1) if workers is None else workers
        self._samples = [folder.samples[i] for i in indices.tolist()]
        self._mean = per_channel(info.mean, self.device)
        self._std = per_channel(info.std, self.device)
        size = info.image_size
        crop = [transforms.RandomResizedCrop(size)]
        if self.augmentation is not None and self.augmentation["flip"]:
            crop.append(transforms.RandomHorizontalFlip())
        self._train = transforms.Compose([*crop, transforms.PILToTensor()])
        resize = transforms.Resize(round(size * 256 / 224))
        self._eval = transforms.Compose(
            [resize, transforms.CenterCrop(size), transforms.PILToTensor()]
        )

    def __len__(self) -> int:
        return len(self._samples)

    def _serve(
        self, batches: Sequence[torch.Tensor], settings: Mapping[str, int | bool] | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Decode batches as uint8 in workers; normalise (and cut out) on the device."""
        loader = DataLoader(
            _Images(self._samples, self._eval if settings is None else self._train),
            batch_sampler=[batch.tolist() for batch in batches],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for images, labels in loader:
            images = normalize(images.to(self.device, non_blocking=True), self._mean, self._std)
            if settings is not None and settings["cutout"]:
                images = cutout_square(images, int(settings["cutout"]))
            yield images, labels.to(self.device, non_blocking=True)


Data = TensorData | FolderData


def build_search_data(
    name: str,
    data_root: str | os.PathLike[str] | None,
    *,
    device: torch.device | str,
    val_fraction: float = 0.5,
    split_seed: int = 0,
    train_size: int | None = None,
    val_size: int | None = None,
    augmentation: Mapping[str, int | bool] | None = None,
    workers: int | None = None,
    image_size: int | None = None,
    download: bool = True,
) -> tuple[Data, Data, DatasetInfo]:
    """Split the training set into augmented search-train and plain validation data (no test)."""
    info = dataset_info(name)
    root = resolve_data_root(name, data_root)
    settings = {**DEFAULT_AUGMENTATION[name], **(augmentation or {})}
    if name == "imagenet":
        folder = _scan(imagenet_folder(root, "train"))
        info = replace(
            info, num_classes=len(folder.classes), image_size=image_size or info.image_size
        )
        train, val = search_split(len(folder), val_fraction, split_seed, train_size, val_size)
        return (
            FolderData(folder, train, info, device, settings, workers),
            FolderData(folder, val, info, device, None, workers),
            info,
        )
    if image_size not in (None, info.image_size):
        raise UserError(
            f"{name} images are {info.image_size} pixels; image_size applies to imagenet"
        )
    images, labels = load_arrays(name, root, train=True, download=download)
    train, val = search_split(len(labels), val_fraction, split_seed, train_size, val_size)
    return (
        TensorData(images[train], labels[train], info, device, settings),
        TensorData(images[val], labels[val], info, device, None),
        info,
    )


def _scan(folder: Path) -> ImageFolder:
    """List an ImageFolder tree's images and classes, as a UserError if it holds none."""
    try:
        return ImageFolder(str(folder))
    except OSError as err:
        raise UserError(
            f"no images in class folders under {folder} ({err}); check the tree"
        ) from err


def first_images(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], limit: int | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches cut to their first ``limit`` images in all (None: every image)."""
    remaining = limit
    for images, labels in batches:
        if remaining is not None:
            if remaining <= 0:
                return
            images, labels = images[:remaining], labels[:remaining]
            remaining -= len(labels)
        yield images, labels


def search_data(config: SearchConfig, device: torch.device):
    """The (search-train, validation, info) split a configuration searches on."""
    return build_search_data(
        config.dataset,
        config.data_root,
        device=device,
        val_fraction=config.val_fraction,
        split_seed=config.seed,
        train_size=config.train_size,
        val_size=config.val_size,
        augmentation=config.augmentation,
        workers=config.workers,
        image_size=config.image_size,
    )
