"""The field's file formats, read as data: CIFAR's python batches (a pickle, unpickled without
running code), idx files, and tarballs extracted atomically."""

from __future__ import annotations

import gzip
import math
import pickle
import shutil
import struct
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from bayesnas.errors import UserError


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


def read_cifar_batches(folder: Path, files: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Read CIFAR batch files (the 'python version') as uint8 [N, 3, 32, 32] and int64 labels."""
    images, labels = [], []
    for file in files:
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


def extract_folder(tarball: Path, root: Path, folder: str) -> Path:
    """Extract `folder` from `tarball` into `root` atomically: into a temporary dir, then rename."""
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=root))
    try:
        with tarfile.open(tarball) as archive:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse links out, devices
                archive.extractall(scratch, filter="data")
            else:
                archive.extractall(scratch)
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


def read_idx(path: Path) -> torch.Tensor:
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
