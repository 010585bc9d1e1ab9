"""NAS-Bench-201's macro skeleton, built once for the super-network and its sub-networks."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from bayesnas.spaces.layers import ResidualReduction


def skeleton(
    channels: int, cells: int, num_classes: int, in_channels: int, cell: Callable[[int], nn.Module]
) -> tuple[nn.Sequential, list[nn.Module], nn.Sequential]:
    """``(stem, layers, head)``: a 3x3 conv stem to ``channels``, three stages of ``cells`` cells
    (``cell(width)``) with a residual reduction doubling the width between stages, and a
    BN-ReLU-pool-linear head."""
    stem = nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
    )
    layers: list[nn.Module] = []
    width = channels
    for stage in range(3):
        if stage:
            layers.append(ResidualReduction(width, 2 * width))
            width *= 2
        layers.extend(cell(width) for _ in range(cells))
    head = nn.Sequential(
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )
    return stem, layers, head
