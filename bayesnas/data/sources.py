"""The supported data sets: their facts, where they live on disk, and how to read them."""

from __future__ import annotations

import errno
import gzip
import math
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tvd
from torchvision.datasets.utils import download_and_extract_archive

from bayesnas.errors import UserError

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "fashion-mnist", "mnist", "imagenet")

_DEBIAN_ROOT = Path("/usr/share/datasets")
_DEBIAN_HINT = {"fashion-mnist": ", or run `apt-get install dataset-fashion-mnist`"}
_TITLES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "fashion-mnist": "Fashion-MNIST",
    "mnist": "MNIST",
    "imagenet": "ImageNet",
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
    return any(folder.is_dir() for folder in _imagenet_candidates(root, "train"))


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
    return _read_cifar(dataset, folder / dataset.base_folder, train)


class _DataUnpickler(pickle.Unpickler):
    """Unpickles CIFAR's batch files as data only: dicts, lists, strings, numbers and NumPy
    arrays. Any other global (a ``__reduce__`` that would run code) is refused, never called."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # bytes as pickled by Python 3 at protocol 2
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which is not data")


def _read_cifar(dataset: type[tvd.CIFAR10], folder: Path, train: bool) -> tuple[torch.Tensor, ...]:
    """Read the batches of a CIFAR split (the 'python version') as uint8 [N, 3, 32, 32]."""
    images, labels = [], []
    for file, _ in dataset.train_list if train else dataset.test_list:
        path = folder / file
        try:
            with open(path, "rb") as stream:
                entry = _DataUnpickler(stream, encoding="latin1").load()
            images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
        except pickle.UnpicklingError as err:
            raise UserError(
                f"{path} was not loaded: {err}, and loading it could run code; replace it with "
                "the real CIFAR files"
            ) from None
        except (OSError, EOFError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise UserError(
                f"cannot read {path} ({type(err).__name__}: {err}); replace it"
            ) from None
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.int64)


def _extracted_cifar(dataset: type[tvd.CIFAR10], root: Path) -> Path | None:
    """Return a root holding the extracted CIFAR folder, extracting `root`'s tarball if need be."""
    tarball = root / dataset.filename
    if _complete(dataset, root):
        return root
    if not tarball.is_file():
        return None
    try:
        target = _extract(tarball, root, dataset.base_folder)
    except OSError as err:
        if err.errno not in _READ_ONLY:
            raise
        target = cache_dir()
        if not _complete(dataset, target):
            _extract(tarball, target, dataset.base_folder)
    if not _complete(dataset, target):
        raise UserError(
            f"{target / dataset.base_folder} lacks some files; remove it so that {tarball} is "
            "extracted afresh"
        )
    return target


def _extract(tarball: Path, root: Path, folder: str) -> Path:
    """Extract `folder` from `tarball` into `root` atomically: into a temporary dir, then rename."""
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=root))
    try:
        with tarfile.open(tarball) as archive:
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(scratch, **safe)
        if not (scratch / folder).is_dir():
            raise UserError(f"{tarball} does not contain the folder {folder}/; replace the archive")
        try:
            (scratch / folder).rename(root / folder)
        except OSError:
            if not (root / folder).is_dir():
                raise
    except (tarfile.TarError, EOFError, gzip.BadGzipFile) as err:
        raise UserError(f"{tarball} is not a readable archive ({err}); replace it") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return root


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
    images, labels = (_read_idx(path) for path in files)
    if images.dim() != 3 or labels.dim() != 1:
        raise UserError(f"{files[0]} and {files[1]} are not an image and a label idx file")
    return images.unsqueeze(1), labels.long()


def _read_idx(path: Path) -> torch.Tensor:
    """Parse an idx file of uint8 values (gzipped or not) into a tensor of its shape."""
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as stream:
            raw = bytearray(stream.read())
    except (OSError, EOFError) as err:
        raise UserError(f"cannot read {path} ({err}); replace the file") from err
    ndim = raw[3] if len(raw) >= 4 else 0
    if raw[:3] != b"\x00\x00\x08" or not 1 <= ndim <= 3 or len(raw) < 4 + 4 * ndim:
        raise UserError(f"{path} is not an idx file of uint8 values; replace the file")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    if len(raw) - 4 - 4 * ndim != math.prod(shape):
        raise UserError(f"{path} is truncated or too long for its shape {shape}; replace the file")
    return torch.frombuffer(raw, dtype=torch.uint8, offset=4 + 4 * ndim).view(shape)


def _imagenet_candidates(root: Path, split: str) -> tuple[Path, Path]:
    """List where an ImageNet split may be: directly in `root` or in `root`/imagenet."""
    return Path(root) / split, Path(root) / "imagenet" / split


def imagenet_folder(root: Path, split: str) -> Path:
    """Return the ImageFolder tree (a sub-folder per class) of ImageNet split `split` in `root`."""
    for folder in _imagenet_candidates(root, split):
        if folder.is_dir():
            return folder
    raise UserError(
        f"ImageNet not found under {root}: it needs {split}/<wnid>/*.JPEG (one folder per class; "
        "pass --data-root / set BAYESNAS_DATA); it cannot be downloaded automatically"
    )


def imagenet_folders(root: Path) -> tuple[Path, Path]:
    """Return the ImageNet train and val ImageFolder trees of `root`."""
    return imagenet_folder(root, "train"), imagenet_folder(root, "val")
