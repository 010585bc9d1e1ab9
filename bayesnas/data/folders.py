"""Image-folder data: ImageNet and a user's own ImageFolder tree, decoded by DataLoader workers.

A folder tree is ``ROOT/train/<class>/*`` (and, if present, ``ROOT/val/<class>/*``). For
``--dataset folder`` the facts the network and normalisation need (classes, channels, image size,
per-channel mean and std) come from the images themselves, so a user's tree needs no code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder

from bayesnas.data.augment import checked_augmentation, cutout_square, normalize, per_channel
from bayesnas.data.batches import Batches
from bayesnas.data.sources import DatasetInfo, dataset_info
from bayesnas.errors import UserError

STATISTICS_IMAGES = 256  # images read, evenly spaced over the tree, to estimate mean and std


def imagenet_folder(root: Path, split: str) -> Path:
    """Return the ImageFolder tree (a sub-folder per class) of ImageNet split `split` in `root`."""
    for folder in (Path(root) / split, Path(root) / "imagenet" / split):
        if folder.is_dir():
            return folder
    raise UserError(
        f"ImageNet not found under {root}: it needs {split}/<wnid>/*.JPEG (one folder per class; "
        "pass --data-root / set BAYESNAS_DATA); it cannot be downloaded automatically"
    )


def user_folder(root: Path, split: str = "train") -> Path:
    """Return ``root/split`` of a user's ImageFolder tree, or one line saying what it needs."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise UserError(
            f"--dataset folder needs {folder}/<class>/<image files> (one sub-folder per class; "
            "an optional val/ beside train/ is the test split); pass --data-root ROOT"
        )
    return folder


def scan(folder: Path) -> ImageFolder:
    """List an ImageFolder tree's images and classes, as a UserError if it holds none."""
    try:
        return ImageFolder(str(folder))
    except OSError as err:
        raise UserError(
            f"no images in class folders under {folder} ({err}); check the tree"
        ) from err


def count_images(root: Path) -> int | None:
    """How many training images a user's tree holds (None when it is not a readable tree)."""
    try:
        return len(scan(user_folder(root)))
    except UserError:
        return None


def _mode(channels: int) -> str:
    return "L" if channels == 1 else "RGB"


def _open(path: str, mode: str) -> Image.Image:
    """Decode one image file into ``mode``, as a UserError naming the file when it is no image."""
    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except (OSError, ValueError) as err:
        raise UserError(f"{path} is not a readable image ({err}); remove or replace it") from err


def folder_info(folder: ImageFolder, image_size: int | None) -> DatasetInfo:
    """Facts of a user's tree read from its images: channels and size from the first image,
    mean and std from up to STATISTICS_IMAGES images evenly spaced over the tree."""
    first = _open(folder.samples[0][0], "RGBA")
    with Image.open(folder.samples[0][0]) as raw:
        channels = 1 if len(raw.getbands()) <= 2 else 3
    size = image_size or min(first.size)
    shape = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size)])
    picks = np.linspace(0, len(folder) - 1, min(len(folder), STATISTICS_IMAGES)).round()
    pixels = (
        np.stack(
            [
                np.asarray(shape(_open(folder.samples[int(i)][0], _mode(channels))), np.float32)
                for i in picks
            ]
        ).reshape(len(picks), size, size, channels)
        / 255.0
    )
    mean = pixels.mean(axis=(0, 1, 2))
    std = np.maximum(pixels.std(axis=(0, 1, 2)), 1e-3)  # a constant channel must not divide by 0
    return replace(
        dataset_info("folder"),
        num_classes=len(folder.classes),
        channels=channels,
        image_size=size,
        mean=tuple(round(float(m), 4) for m in mean),
        std=tuple(round(float(s), 4) for s in std),
    )


class _Images(Dataset):
    """Image files with labels, decoded and transformed in DataLoader workers."""

    def __init__(
        self, samples: list[tuple[str, int]], transform: transforms.Compose, mode: str
    ) -> None:
        self.samples = samples
        self.transform = transform
        self.mode = mode

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self.transform(_open(path, self.mode)), label


class FolderData(Batches):
    """A subset of an ImageFolder tree decoded by DataLoader workers, served in batches.

    ImageNet trains on random resized crops (its standard); a user's tree (``info.name ==
    "folder"``) is resized and centre-cropped to its image size, then padded-cropped and flipped
    as the augmentation says, like the in-memory data sets.
    """

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
        pad = int(self.augmentation["pad"]) if self.augmentation is not None else 0
        if pad and info.name == "imagenet":
            raise UserError("augmentation pad does not apply to ImageNet's crops; set pad to 0")
        self.workers = min(8, os.cpu_count() or 1) if workers is None else workers
        self._samples = [folder.samples[i] for i in indices.tolist()]
        self._mean = per_channel(info.mean, self.device)
        self._std = per_channel(info.std, self.device)
        self._mode = _mode(info.channels)
        size = info.image_size
        if info.name == "imagenet":
            crop: list = [transforms.RandomResizedCrop(size)]
            plain: list = [transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)]
        else:
            plain = [transforms.Resize(size), transforms.CenterCrop(size)]
            crop = [*plain, transforms.RandomCrop(size, padding=pad)] if pad else list(plain)
        if self.augmentation is not None and self.augmentation["flip"]:
            crop.append(transforms.RandomHorizontalFlip())
        self._train = transforms.Compose([*crop, transforms.PILToTensor()])
        self._eval = transforms.Compose([*plain, transforms.PILToTensor()])

    def __len__(self) -> int:
        return len(self._samples)

    def _serve(
        self, batches: Sequence[torch.Tensor], settings: Mapping[str, int | bool] | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Decode batches as uint8 in workers; normalise (and cut out) on the device."""
        loader = DataLoader(
            _Images(self._samples, self._eval if settings is None else self._train, self._mode),
            batch_sampler=[batch.tolist() for batch in batches],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for images, labels in loader:
            images = normalize(images.to(self.device, non_blocking=True), self._mean, self._std)
            if settings is not None and settings["cutout"]:
                images = cutout_square(images, int(settings["cutout"]))
            yield images, labels.to(self.device, non_blocking=True)
