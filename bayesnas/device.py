"""Where a run computes and how its random state is saved and restored."""

from __future__ import annotations

from typing import Any

import pyro
import torch

from bayesnas.errors import UserError


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    return device


def rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """All random states a step consumes (torch CPU and CUDA, Python, NumPy), as plain data:
    NumPy's key array becomes a tensor, so that checkpoint.pt loads with ``weights_only``.

    With a CUDA ``device`` only that GPU's generator is saved (a rank of a data-parallel run
    touches no other GPU); without one, every visible GPU's."""
    state: dict[str, Any] = {"pyro": dict(pyro.util.get_rng_state())}
    kind, key, *rest = state["pyro"]["numpy"]
    state["pyro"]["numpy"] = (kind, torch.from_numpy(key.astype("int64")), *rest)
    if device is not None and device.type == "cuda":
        state["cuda_device"] = torch.cuda.get_rng_state(device)
    elif device is None and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    """Restore what ``rng_state`` saved (a one-GPU state goes to ``device``)."""
    saved = dict(state["pyro"])
    kind, key, *rest = saved["numpy"]
    if isinstance(key, torch.Tensor):
        saved["numpy"] = (kind, key.numpy().astype("uint32"), *rest)
    pyro.util.set_rng_state(saved)
    if "cuda_device" in state and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_device"], device)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
