"""The supported data sets: their facts, where they live on disk, and how to read them."""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision import datasets as tvd
from torchvision.datasets.utils import download_and_extract_archive

from bayesnas.data.formats import extract_folder, read_cifar_batches, read_idx
from bayesnas.errors import UserError

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "fashion-mnist", "mnist", "imagenet", "folder")

_DEBIAN_ROOT = Path("/usr/share/datasets")
_DEBIAN_HINT = {"fashion-mnist": ", or run `apt-get install dataset-fashion-mnist`"}
_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "fashion-mnist": "Fashion-MNIST",
    "mnist": "MNIST",
    "imagenet": "ImageNet",
    "folder": "an image folder",
}
_IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_READ_ONLY = (errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about a data set that models and transforms need."""

    name: str
    num_classes: int
    channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_images: int | None = None  # size of the training split, where fixed by the format


_INFOS = {
    info.name: info
    for info in (
        DatasetInfo(
            "cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 50000
        ),
        DatasetInfo(
            "cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 50000
        ),
        DatasetInfo("fashion-mnist", 10, 1, 28, (0.2860,), (0.3530,), 60000),
        DatasetInfo("mnist", 10, 1, 28, (0.1307,), (0.3081,), 60000),
        DatasetInfo("imagenet", 1000, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        DatasetInfo("folder", 0, 0, 0, (), ()),  # read from the user's images at load time
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """Return the facts about data set `name`, so that callers never hard-code them."""
    if name not in _INFOS:
        raise UserError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return _INFOS[name]


def cache_dir() -> Path:
    """Return the per-user cache folder (XDG_CACHE_HOME honoured) where data sets may be kept."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "bayesnas"


def resolve_data_root(name: str, data_root: str | os.PathLike[str] | None) -> Path:
    """Return the root to read `name` from: a given `data_root` itself (it must exist; there is
    no fallback, so the root recorded with a run is the one read), else the first candidate
    that holds `name` ($BAYESNAS_DATA, the cache, Debian's path), else the first to download to."""
    dataset_info(name)
    if data_root is None and name == "folder":
        raise UserError(
            "--dataset folder needs --data-root ROOT, a folder holding train/<class>/<images>"
        )
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            what = "is not a folder" if root.exists() else "does not exist"
            raise UserError(
                f"--data-root {root} {what}: pass the folder that holds the data set "
                "(or leave --data-root out to use $BAYESNAS_DATA, the cache or Debian's copy)"
            )
        return root
    candidates = []
    if os.environ.get("BAYESNAS_DATA"):
        candidates.append(Path(os.environ["BAYESNAS_DATA"]).expanduser())
    candidates.append(cache_dir())
    if name == "fashion-mnist":
        candidates.append(_DEBIAN_ROOT)
    for root in candidates:
        if _present(name, root):
            return root
    return candidates[0]


def _present(name: str, root: Path) -> bool:
    """Tell whether the training split of `name` (or an archive of it) is under `root`."""
    if name in _CIFAR:
        return _complete(_CIFAR[name], root) or (root / _CIFAR[name].filename).is_file()
    if name in _IDX_FOLDERS:
        return _idx_files(name, root, train=True) is not None
    return (root / "train").is_dir() or (root / "imagenet" / "train").is_dir()


def _not_found(name: str, root: Path, what: str, why: str) -> UserError:
    """Build the one-line error for a data set that is absent from `root`."""
    return UserError(
        f"{_TITLES[name]} not found under {root}: place {what} there (or pass --data-root / "
        f"set BAYESNAS_DATA){_DEBIAN_HINT.get(name, '')}; {why}"
    )


def _fetch(name: str, root: Path, what: str, download: bool) -> None:
    """Download `name` into `root` with torchvision, or explain in a UserError why not."""
    if not download:
        raise _not_found(name, root, what, "downloading is off")
    try:
        root.mkdir(parents=True, exist_ok=True)
        if name in _CIFAR:  # only the archive: its batches are read by _read_cifar, not pickle
            cifar = _CIFAR[name]
            download_and_extract_archive(
                cifar.url, str(root), filename=cifar.filename, md5=cifar.tgz_md5
            )
        else:
            getattr(tvd, _IDX_FOLDERS[name])(str(root), train=True, download=True)
    except (OSError, RuntimeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _not_found(name, root, what, f"download failed ({reason})") from err


def load_arrays(
    name: str, root: Path, train: bool, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load an in-memory data set as uint8 images [N, C, H, W] and int64 labels [N] on the CPU."""
    info = dataset_info(name)
    root = Path(root)
    if name in _CIFAR:
        images, labels = _load_cifar(name, root, train, download)
    elif name in _IDX_FOLDERS:
        images, labels = _load_idx(name, root, train, download)
    else:
        raise UserError(f"{name} is not held in memory; it is read from image folders")
    if len(images) != len(labels) or images.shape[1:] != (info.channels,) + (info.image_size,) * 2:
        raise UserError(f"{_TITLES[name]} under {root} has unexpected shapes; re-create the files")
    if len(labels) and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise UserError(
            f"{_TITLES[name]} under {root} has labels outside 0..{info.num_classes - 1}"
        )
    return images, labels


def _unchecked(base: type[tvd.CIFAR10]) -> type[tvd.CIFAR10]:
    """Derive a CIFAR class that checks files exist but not their md5 (rebuilt copies differ)."""
    members = {
        "train_list": [[file, None] for file, _ in base.train_list],
        "test_list": [[file, None] for file, _ in base.test_list],
        "meta": {**base.meta, "md5": None},
    }
    return type(f"Unchecked{base.__name__}", (base,), members)


_CIFAR = {"cifar10": _unchecked(tvd.CIFAR10), "cifar100": _unchecked(tvd.CIFAR100)}


def _complete(dataset: type[tvd.CIFAR10], root: Path) -> bool:
    """Tell whether `root` holds the extracted folder of a CIFAR data set with all its files."""
    files = [file for file, _ in dataset.train_list + dataset.test_list]
    files.append(dataset.meta["filename"])
    return all((root / dataset.base_folder / file).is_file() for file in files)


def _load_cifar(name: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, ...]:
    """Read CIFAR batches from `root`, extracting the tarball or downloading first if needed."""
    dataset = _CIFAR[name]
    what = f"{dataset.filename} or {dataset.base_folder}/"
    folder = _extracted_cifar(dataset, root)
    if folder is None:
        _fetch(name, root, what, download)
        folder = root
    files = [file for file, _ in (dataset.train_list if train else dataset.test_list)]
    return read_cifar_batches(folder / dataset.base_folder, files)


def _extracted_cifar(dataset: type[tvd.CIFAR10], root: Path) -> Path | None:
    """Return a root holding the extracted CIFAR folder, extracting `root`'s tarball if need be."""
    tarball = root / dataset.filename
    if _complete(dataset, root):
        return root
    if not tarball.is_file():
        return None
    try:
        target = extract_folder(tarball, root, dataset.base_folder)
    except OSError as err:
        if err.errno not in _READ_ONLY:
            raise
        target = cache_dir()
        if not _complete(dataset, target):
            extract_folder(tarball, target, dataset.base_folder)
    if not _complete(dataset, target):
        raise UserError(
            f"{target / dataset.base_folder} lacks some files; remove it so that {tarball} is "
            "extracted afresh"
        )
    return target


def _idx_files(name: str, root: Path, train: bool) -> tuple[Path, Path] | None:
    """Find the idx image and label files of a split in torchvision's layout or a flat folder."""
    prefix = "train" if train else "t10k"
    for folder in (root / _IDX_FOLDERS[name] / "raw", root / name, root):
        found = [
            next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)
            for base in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")
        ]
        if found[0] is not None and found[1] is not None:
            return found[0], found[1]
    return None


def _load_idx(name: str, root: Path, train: bool, download: bool) -> tuple[torch.Tensor, ...]:
    """Read an MNIST-like split from idx files, downloading them first if need be."""
    what = f"train-images-idx3-ubyte.gz etc. (or {_IDX_FOLDERS[name]}/raw/)"
    files = _idx_files(name, root, train)
    if files is None:
        _fetch(name, root, what, download)
        files = _idx_files(name, root, train)
    if files is None:
        raise _not_found(name, root, what, "the download left no idx files")
    images, labels = (read_idx(path) for path in files)
    if images.dim() != 3 or labels.dim() != 1:
        raise UserError(f"{files[0]} and {files[1]} are not an image and a label idx file")
    return images.unsqueeze(1), labels.long()
