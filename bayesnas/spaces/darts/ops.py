"""DARTS's candidate operations and macro skeleton, as DARTS defines them (Liu et al., 2019).

ReLU-conv-BN order; a separable conv is a depthwise + pointwise pair applied twice; a dilated
conv is one depthwise (dilation 2) + pointwise pair; skip in a reduction cell (stride 2) is the
factorised reduce. Every conv has no bias and every BatchNorm is affine (the search network and
the evaluation network share these modules, so an export holds the searched weights as they are).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.spaces.darts.genotype import NODES
from bayesnas.spaces.layers import ReLUConvBN

STEM_MULTIPLIER = 3  # the stem has 3C channels (DARTS)
EDGES = tuple((node + 2, src) for node in range(NODES) for src in range(node + 2))  # (to, from)


class SepConv(nn.Module):
    """DARTS's separable conv: (ReLU, depthwise k x k, pointwise 1x1, BN) twice; stride first."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        pad = kernel // 2
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in),
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, 1, pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """DARTS's dilated conv: ReLU, depthwise k x k with dilation 2, pointwise 1x1, BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, kernel - 1, dilation=2, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution: ReLU, two stride-2 1x1 convs (one shifted by a pixel), concat, BN.

    DARTS's module; the shifted half is padded back to the input size, which changes nothing on
    even sizes (DARTS's) and keeps odd ones working (28-pixel images reach 7 pixels)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    """Candidate op ``name`` (any of genotype.OPS but 'none') on ``channels`` channels."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    kind, _, size = name.rpartition("_")
    kernel = int(size[0])
    if kind == "sep_conv":
        return SepConv(channels, channels, kernel, stride)
    if kind == "dil_conv":
        return DilConv(channels, channels, kernel, stride)
    raise ValueError(f"unknown DARTS op {name!r}")


@dataclass(frozen=True)
class CellShape:
    """Where a cell sits: its input widths, its own width C, and whether it (or the cell
    before it) halves the resolution."""

    c_prev_prev: int
    c_prev: int
    channels: int
    reduction: bool
    reduction_prev: bool


def skeleton(channels: int, cells: int) -> tuple[list[CellShape], int]:
    """DARTS's cell sequence: reduction cells (width doubled) at 1/3 and 2/3 of ``cells``;
    returns the cells' shapes and the width of the last cell's output."""
    c_prev_prev = c_prev = STEM_MULTIPLIER * channels
    width, reduction_prev, shapes = channels, False, []
    for index in range(cells):
        reduction = index in (cells // 3, 2 * cells // 3)
        width *= 2 if reduction else 1
        shapes.append(CellShape(c_prev_prev, c_prev, width, reduction, reduction_prev))
        c_prev_prev, c_prev, reduction_prev = c_prev, NODES * width, reduction
    return shapes, c_prev


def auxiliary_position(cells: int) -> int:
    """Index of the cell after which DARTS's auxiliary head reads (2/3 of the depth)."""
    return 2 * cells // 3


def stem(in_channels: int, channels: int) -> nn.Sequential:
    """DARTS's CIFAR stem: a 3x3 conv to 3C channels and BN."""
    width = STEM_MULTIPLIER * channels
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
    )


def preprocessing(shape: CellShape) -> tuple[nn.Module, nn.Module]:
    """The cell's two input adapters to C channels (a factorised reduce after a reduction)."""
    first = (
        FactorizedReduce(shape.c_prev_prev, shape.channels)
        if shape.reduction_prev
        else ReLUConvBN(shape.c_prev_prev, shape.channels, 1)
    )
    return first, ReLUConvBN(shape.c_prev, shape.channels, 1)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """DARTS's drop-path: zero the op's output for a random ``drop_prob`` share of the examples,
    scaling the rest by 1 / (1 - drop_prob)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask
