"""Reading checkpoint.pt and posterior.pt as data only (``weights_only``), never as code.

A file that holds anything but tensors and plain Python data is refused unread, naming what it
asks for; a corrupt or foreign one is a one-line user error too, never a traceback.
"""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from bayesnas.errors import UserError

FORMAT_VERSION = 1


def _legacy_globals() -> list[Any]:
    """Plain data that bayesnas 0.1 pickled as classes: the torch version string and NumPy's
    RNG state (a uint32 array). Allowed so that its runs still load; nothing else is."""
    import numpy as np
    from torch.torch_version import TorchVersion

    core = getattr(np, "_core", None) or np.core
    return [TorchVersion, core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype("u4"))]


# what torch's weights-only unpickler says when a file asks for more than data (as opposed to
# a file that is merely corrupt): a global outside the allow-list, a call or object it refuses
_UNSAFE_SIGNS = ("GLOBAL", "allowlisted", "Trying to call reduce")


def load_torch(path: Path, what: str) -> dict[str, Any]:
    """Load a checkpoint or posterior as data only (``weights_only``): tensors and plain Python
    values. A file that asks for anything else (such as a pickled ``__reduce__`` that would run
    code) is refused unread; a corrupt or foreign one is a UserError too, never a traceback."""
    kind = not_a_file(path)
    if kind is not None:
        raise UserError(f"{path} is {kind}, not a {what}: move it away")
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:  # a corrupt file makes torch warn too; the one-line error below says it all
        with torch.serialization.safe_globals(_legacy_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if any(sign in str(exc) for sign in _UNSAFE_SIGNS):
            raise UnsafeFile(path, what) from None
        raise _unreadable(path, what, exc) from None
    except Exception as exc:
        raise _unreadable(path, what, exc) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise UserError(f"{path} is not a bayesnas {what} of format {FORMAT_VERSION}")
    return payload


def not_a_file(path: Path) -> str | None:
    """What has the name ``path`` when it is no regular file (a directory, a link that leads to
    no file, a device or pipe); None when it is a regular file or nothing is there."""
    if path.is_file() or not os.path.lexists(path):
        return None
    if path.is_dir():
        return "a directory"
    if path.is_symlink():
        return "a symbolic link that leads to no file (a loop or a missing target)"
    return "not a regular file"


def _unreadable(path: Path, what: str, exc: Exception) -> UserError:
    return UserError(
        f"{path} is not a readable {what} ({type(exc).__name__}): delete it or point to another run"
    )


class UnsafeFile(UserError):
    """A .pt file that holds more than data: it was not loaded, as loading it could run code."""

    def __init__(self, path: Path, what: str):
        try:
            allowed = {f"{g.__module__}.{g.__qualname__}" for g in _legacy_globals()}
            names = [
                n
                for n in torch.serialization.get_unsafe_globals_in_checkpoint(path)
                if n not in allowed
            ]
        except Exception:  # the scan reads opcodes only; any failure just loses the detail
            names = []
        found = f" (it asks for {', '.join(names[:3])})" if names else ""
        super().__init__(
            f"{path} holds objects other than tensors and plain data{found}, so it was not "
            f"loaded: it could run code. Use a {what} from a source you trust, or start over"
        )
