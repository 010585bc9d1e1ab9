"""Standalone sub-networks: one architecture of a super-network as a physically smaller module.

A sub-network is described by a small JSON-able spec (``subnet_spec``), rebuilt from that spec
alone with fresh weights (``subnet_from_spec``), and filled with the super-network's weights by
``build_subnet``; in eval mode it computes ``net.forward_architecture(x, arch)``. Its structure is
fixed at construction, so ``forward(images)`` has no data-dependent control flow and exports to
ONNX and TorchScript. Dropped ops, channels and branches hold no weights and cost nothing.

A sub-network trained by ``bayesnas train`` may add training-only parts (DARTS's evaluation
network: an auxiliary head and drop-path). Their optional hooks, each with a default for a
plain module, are read here only: ``forward_with_auxiliary(images)`` (main and auxiliary
logits), a ``drop_path_prob`` attribute (set per epoch) and ``without_auxiliary()``.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.registry import list_spaces, lookup


def subnet_spec(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
    """The JSON description of sub-network ``arch``: the space, its config and what is kept."""
    return {"space": net.space_name, **net.config, **_subnet_class(net.space_name).kept(net, arch)}


def subnet_from_spec(spec: dict[str, Any]) -> nn.Module:
    """A freshly initialised sub-network shaped by ``spec``; ValueError if it is malformed."""
    options = {k: v for k, v in spec.items() if k != "space"}
    try:
        return _subnet_class(spec.get("space"))(**options)
    except (KeyError, TypeError) as exc:  # a missing, unknown or mistyped entry
        raise ValueError(f"bad sub-network spec: {type(exc).__name__} {exc}") from None


def build_subnet(net: SuperNet, arch: torch.Tensor) -> nn.Module:
    """Sub-network ``arch`` holding copies of the super-network's kept weights, in eval mode."""
    subnet = subnet_from_spec(subnet_spec(net, arch))
    subnet.load_state_dict(cast(Any, subnet).weights_from(net))
    return subnet.to(next(net.parameters()).device).eval()


def _subnet_class(space: Any) -> Any:
    """The registered space's sub-network class (an ``nn.Module`` with ``kept`` and
    ``weights_from``, see spaces/base.py); ValueError when it has none."""
    entry = lookup(space)
    if entry is None or entry.subnet is None:
        known = [n for n in list_spaces() if getattr(lookup(n), "subnet", None) is not None]
        raise ValueError(f"space {space!r} has no standalone sub-network; known: {known}")
    return entry.subnet()


def training_outputs(
    model: nn.Module, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Main logits, and auxiliary logits where the network has an auxiliary head in training."""
    forward = getattr(model, "forward_with_auxiliary", None)
    return forward(images) if forward is not None else (model(images), None)


def set_drop_path(model: nn.Module, rate: float) -> None:
    """The drop-path rate of this epoch, for a network that has drop-path (else nothing)."""
    if hasattr(model, "drop_path_prob"):
        cast(Any, model).drop_path_prob = rate


def drop_training_parts(model: nn.Module) -> bool:
    """Remove the parts that exist for training only (an auxiliary head); whether any did."""
    if getattr(model, "auxiliary", None) is None:
        return False
    cast(Any, model).without_auxiliary()
    return True
