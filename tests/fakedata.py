"""Small data sets written in the exact on-disk formats of CIFAR, MNIST and ImageNet, for tests."""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

Split = tuple[np.ndarray, np.ndarray]

IMAGENET_CLASSES = ("n01440764", "n01443537", "n01484850")


class _Py2Pickler(pickle._Pickler):
    """Pickle str and bytes as Python 2 byte strings, as the original CIFAR cPickle files do."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, value: str | bytes) -> None:
        raw = value.encode("latin1") if isinstance(value, str) else value
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(value)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def _dump(path: Path, record: dict) -> None:
    """Write `record` as a protocol-2 pickle with Python 2 strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        _Py2Pickler(stream, protocol=2).dump(record)


def _batch(label_key: str, images: np.ndarray, labels: np.ndarray, title: str) -> dict:
    """Build one CIFAR batch record: rows are the R, G and B planes, each row-major."""
    return {
        "batch_label": title,
        label_key: labels.tolist(),
        "data": images.reshape(len(images), 3 * 32 * 32),
        "filenames": [f"{i}.png" for i in range(len(images))],
    }


def write_cifar(
    root: Path, name: str = "cifar100", train: int = 50, test: int = 20, *, tarball: bool = False
) -> dict[str, Split]:
    """Write a small CIFAR-10 or CIFAR-100 ('python version') under `root`; return its arrays."""
    rng = np.random.default_rng(len(name) + train + test)
    classes = 100 if name == "cifar100" else 10
    splits = {
        split: (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, classes, n))
        for split, n in (("train", train), ("test", test))
    }
    if name == "cifar100":
        folder = root / "cifar-100-python"
        for split, (images, fine) in splits.items():
            record = _batch("fine_labels", images, fine, f"{split}ing batch 1 of 1")
            _dump(folder / split, {**record, "coarse_labels": (fine // 5).tolist()})
        names = {"fine_label_names": [f"fine{i}" for i in range(100)]}
        _dump(folder / "meta", {**names, "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    else:
        folder = root / "cifar-10-batches-py"
        parts = zip(*(np.array_split(array, 5) for array in splits["train"]), strict=True)
        for i, (images, labels) in enumerate(parts, start=1):
            _dump(folder / f"data_batch_{i}", _batch("labels", images, labels, f"batch {i} of 5"))
        _dump(folder / "test_batch", _batch("labels", *splits["test"], "testing batch 1 of 1"))
        meta = {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}
        _dump(folder / "batches.meta", {**meta, "num_cases_per_batch": max(train // 5, 1)})
    if tarball:
        archive_name = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}
        with tarfile.open(root / archive_name[name], "w:gz") as archive:
            archive.add(folder, arcname=folder.name)
        shutil.rmtree(folder)
    return splits


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an idx file (gzipped when `path` ends in .gz)."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as stream:
        stream.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(
    root: Path,
    name: str = "mnist",
    layout: str = "torchvision",
    gz: bool = True,
    train: int = 30,
    test: int = 10,
) -> dict[str, Split]:
    """Write MNIST-like idx files in torchvision's, a flat or a named layout; return the arrays."""
    folder = {
        "torchvision": root / {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[name] / "raw",
        "flat": root,
        "named": root / name,
    }[layout]
    rng = np.random.default_rng(train + test)
    splits = {}
    for split, prefix, n in (("train", "train", train), ("test", "t10k", test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{'.gz' if gz else ''}", labels)
        splits[split] = (images[:, None], labels.astype(np.int64))
    return splits


def write_imagenet(
    root: Path, classes: tuple[str, ...] = IMAGENET_CLASSES, train: int = 4, val: int = 2
) -> None:
    """Write small real JPEGs of varied sizes into train/<wnid>/ and val/<wnid>/ under `root`."""
    rng = np.random.default_rng(len(classes))
    for split, count in (("train", train), ("val", val)):
        for label, wnid in enumerate(classes):
            (root / split / wnid).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = (40 + 8 * (i % 3), 48 - 4 * label)
                pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / wnid / f"{wnid}_{i}.JPEG", "JPEG")


def write_image_folder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 12, mode: str = "L",
    size: int = 20, val: int = 0,
) -> None:  # fmt: skip
    """Write PNGs in ``mode`` into root/train/<class>/ (and val/ if ``val``), each class with its
    own mean brightness so that a network can learn them apart."""
    rng = np.random.default_rng(per_class)
    bands = len(Image.new(mode, (1, 1)).getbands())
    for split, count in (("train", per_class), ("val", val)):
        for label, name in enumerate(classes):
            if not count:
                continue
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                base = 60 + 130 * label // max(len(classes) - 1, 1)
                pixels = rng.integers(base - 50, base + 50, (size, size, bands), dtype=np.uint8)
                image = Image.fromarray(pixels.squeeze(-1) if bands == 1 else pixels, mode)
                image.save(root / split / name / f"{i}.png")
