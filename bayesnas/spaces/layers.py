"""Building blocks shared by the search spaces."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ReLUConvBN(nn.Module):
    """ReLU, a square convolution and BatchNorm: the conv op of NAS-Bench-201 and DARTS."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, affine: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(torch.relu(x)))


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block: a stride-2 residual block doubling the width."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class BoxAverage3x3(nn.Module):
    """3x3 average pooling, stride 1, padding excluded from the count.

    Equal to ``nn.AvgPool2d(3, 1, 1, count_include_pad=False)`` but computed as a depthwise
    convolution, which is several times faster on CPU (measured in docs/benchmarks.md).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.kernel: torch.Tensor
        self.register_buffer("kernel", torch.ones(channels, 1, 3, 3), persistent=False)
        self._counts: dict[tuple, torch.Tensor] = {}

    def _count(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape[-2], x.shape[-1], x.device, x.dtype)
        if key not in self._counts:
            ones = torch.ones(1, 1, *key[:2], device=x.device, dtype=x.dtype)
            self._counts[key] = nn.functional.conv2d(ones, self.kernel[:1], padding=1)
        return self._counts[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel.to(x.dtype)
        return nn.functional.conv2d(x, kernel, padding=1, groups=x.shape[1]) / self._count(x)


def batch_norm_subset(bn: nn.BatchNorm2d, h: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """BatchNorm over a subset ``kept`` of its channels; in train mode (BN recalibration of a
    sub-network) it also updates the running statistics of those channels."""
    running_mean, running_var, batches = bn.running_mean, bn.running_var, bn.num_batches_tracked
    assert running_mean is not None and running_var is not None and batches is not None
    weight, bias = bn.weight[kept], bn.bias[kept]
    mean, var = running_mean[kept], running_var[kept]
    if not bn.training:
        return F.batch_norm(h, mean, var, weight, bias, False, 0.0, bn.eps)
    batches += 1
    factor = bn.momentum if bn.momentum is not None else 1.0 / float(batches)
    out = F.batch_norm(h, mean, var, weight, bias, True, factor, bn.eps)
    running_mean[kept], running_var[kept] = mean, var
    return out


def imagenet_stem(in_channels: int, channels: int) -> nn.Sequential:
    """ResNet's and DenseNet's ImageNet stem: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max pool."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 7, 2, 3, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    )
