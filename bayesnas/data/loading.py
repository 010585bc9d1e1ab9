"""What a search reads: a data set by name, split into search-train and validation batches."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any, NamedTuple, Protocol

import torch

from bayesnas.data.augment import DEFAULT_AUGMENTATION
from bayesnas.data.batches import TensorData, held_out_indices, search_split, split_sizes
from bayesnas.data.folders import FolderData, folder_info, imagenet_folder, scan, user_folder
from bayesnas.data.sources import DatasetInfo, dataset_info, load_arrays, resolve_data_root
from bayesnas.errors import UserError

Data = TensorData | FolderData


class SplitSettings(Protocol):
    """What the search's data needs of its configuration (a ``SearchConfig`` has it), declared
    here so that data never imports config."""

    @property
    def dataset(self) -> str: ...
    @property
    def data_root(self) -> str | None: ...
    @property
    def val_fraction(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def train_size(self) -> int | None: ...
    @property
    def val_size(self) -> int | None: ...
    @property
    def augmentation(self) -> dict[str, Any] | None: ...
    @property
    def workers(self) -> int | None: ...
    @property
    def image_size(self) -> int | None: ...
    @property
    def gate_data(self) -> str: ...


class SearchParts(NamedTuple):
    """A search's data: search-train (augmented), validation (plain) and, when asked for, the
    held-out images q is fitted on (plain; ``held_out_indices``), with the data set's facts."""

    train: Data
    val: Data
    info: DatasetInfo
    held_out: Data | None = None


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
    held_out: bool = False,
) -> SearchParts:
    """Split the training set into augmented search-train and plain validation data (no test);
    with ``held_out``, also the validation part's images beyond ``val_size``."""
    info = dataset_info(name)
    root = resolve_data_root(name, data_root)
    settings = {**DEFAULT_AUGMENTATION[name], **(augmentation or {})}
    if name in ("imagenet", "folder"):
        if name == "imagenet":
            folder = scan(imagenet_folder(root, "train"))
            size = image_size or info.image_size
            info = replace(info, num_classes=len(folder.classes), image_size=size)
        else:
            folder = scan(user_folder(root))
            info = folder_info(folder, image_size)
        count = len(folder)
        train, val = search_split(count, val_fraction, split_seed, train_size, val_size)
        rest = _held_out(count, val_fraction, split_seed, val_size) if held_out else None
        return SearchParts(
            FolderData(folder, train, info, device, settings, workers),
            FolderData(folder, val, info, device, None, workers),
            info,
            None if rest is None else FolderData(folder, rest, info, device, None, workers),
        )
    if image_size not in (None, info.image_size):
        raise UserError(
            f"{name} images are {info.image_size} pixels; image_size applies to image folders"
        )
    images, labels = load_arrays(name, root, train=True, download=download)
    count = len(labels)
    train, val = search_split(count, val_fraction, split_seed, train_size, val_size)
    rest = _held_out(count, val_fraction, split_seed, val_size) if held_out else None
    return SearchParts(
        TensorData(images[train], labels[train], info, device, settings),
        TensorData(images[val], labels[val], info, device, None),
        info,
        None if rest is None else TensorData(images[rest], labels[rest], info, device, None),
    )


def _held_out(count: int, val_fraction: float, seed: int, val_size: int | None) -> torch.Tensor:
    """The held-out indices, or a UserError when --val-size leaves none."""
    rest = held_out_indices(count, val_fraction, seed, val_size)
    if len(rest) == 0:
        half = count - split_sizes(count, val_fraction)["train_size"]
        raise UserError(
            f"--gate-data held-out fits q on validation images that ranking does not use, and "
            f"--val-size takes all {half}: set --val-size below {half} (e.g. {half // 2})"
        )
    return rest


def search_data(config: SplitSettings, device: torch.device) -> SearchParts:
    """The (search-train, validation, info[, held-out]) parts a configuration searches on."""
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
        held_out=config.gate_data == "held-out",
    )


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
