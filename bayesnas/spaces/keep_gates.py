"""What spaces with Bernoulli keep gates share: the hex text of a gate vector, and per-group
statistics of q in the form the report reads (``groups``, ``expected_channels_dropped``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def encode_bits(arch: torch.Tensor) -> str:
    """A hard gate vector as the hex of its packed bits (samples.jsonl's ``encoding``)."""
    return np.packbits(arch.detach().cpu().numpy().astype(bool)).tobytes().hex()


def decode_bits(text: str, size: int) -> torch.Tensor:
    """The gate vector of ``size`` elements that ``encode_bits`` wrote as ``text``."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))
    if len(bits) < size:
        raise ValueError(f"encoding holds {len(bits)} gates, the space has {size}")
    return torch.from_numpy(bits[:size].astype(np.float32))


def hex_defect(row: dict[str, Any]) -> str | None:
    """What is wrong with a samples.jsonl row's encoding (None: it is hex)."""
    try:
        bytes.fromhex(row["encoding"])
    except (KeyError, TypeError, ValueError):
        return f"encoding {row.get('encoding')!r} is not the hex of a gate vector"
    return None


def keep_statistics(
    gate_logits: torch.Tensor,
    names: list[str],
    channels: list[int],
    gates: list[int],
    units: str,
    mode: str,
) -> dict[str, Any]:
    """Keep probability and entropy per group, as plain JSON data.

    ``channels``: input channels each group switches; ``gates``: its independent gates (equal to
    ``channels`` for channel gates, 1 for one gate per edge); ``units``: what a group removes
    when every gate is off ("branches", "connections"), for the report's labels.
    """
    keep = torch.sigmoid(gate_logits.detach().float().cpu())
    entropy = F.binary_cross_entropy(keep, keep, reduction="none")
    groups = [
        {"group": n, "keep": float(k), "entropy": float(h), "channels": c, "gates": g, "unit": n}
        for n, k, h, c, g in zip(names, keep, entropy, channels, gates, strict=True)
    ]
    dropped = sum((1 - float(k)) * c for k, c in zip(keep, channels, strict=True))
    return {
        "groups": groups,
        "units": units,
        "expected_channels_dropped": dropped / sum(channels),
        "mode": mode,
    }
