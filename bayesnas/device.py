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


def rng_state() -> dict[str, Any]:
    """All random states a step consumes (torch CPU and CUDA, Python, NumPy), as plain data:
    NumPy's key array becomes a tensor, so that checkpoint.pt loads with ``weights_only``."""
    state = {"pyro": dict(pyro.util.get_rng_state())}
    kind, key, *rest = state["pyro"]["numpy"]
    state["pyro"]["numpy"] = (kind, torch.from_numpy(key.astype("int64")), *rest)
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    saved = dict(state["pyro"])
    kind, key, *rest = saved["numpy"]
    if isinstance(key, torch.Tensor):
        saved["numpy"] = (kind, key.numpy().astype("uint32"), *rest)
    pyro.util.set_rng_state(saved)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
