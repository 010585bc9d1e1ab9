"""ResNet-50 whose 3x3 convs are concatenated 1x1 / 3x3 / dilated-3x3 branches with gated inputs.

The PGNAS ImageNet prior: in every bottleneck the 3x3 conv (``width`` channels in and out)
becomes three parallel convs (1x1, 3x3, and 3x3 with dilation 2) reading the same input and
splitting the ``width`` output channels between them (thirds; their concatenation feeds ``bn2``
and ``conv3`` as the 3x3 conv did). As in ``resnet``, every branch has one keep gate per input
channel and one drop probability per branch. A branch without inputs is removed (its output
channels are zero before ``bn2``), and conv1 computes only channels some branch keeps.
Defaults: ResNet-50's stages (3/4/6/3 bottlenecks, base width 64).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.errors import UserError
from bayesnas.gates import GateLayout
from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.costs import conv_slice_costs
from bayesnas.spaces.keep_gates import decode_bits, encode_bits, keep_statistics
from bayesnas.spaces.layers import batch_norm_subset, imagenet_stem

STAGES = (3, 4, 6, 3)  # bottlenecks per stage in ResNet-50
EXPANSION = 4  # a bottleneck's output has 4 x width channels
BRANCHES = (("conv1x1", 1, 1), ("conv3x3", 3, 1), ("dil3x3", 3, 2))  # name, kernel, dilation


def branch_widths(width: int) -> list[int]:
    """Output channels of the three branches: thirds of ``width`` (the last takes the rest)."""
    return [width // 3, width // 3, width - 2 * (width // 3)]


def stage_plan(base_width: int, bottlenecks: int) -> list[tuple[int, int, int]]:
    """(input channels, width, stride) of every bottleneck, stage by stage."""
    plan, c_in = [], base_width  # the stem's channels (64 in ResNet-50)
    for stage, blocks in enumerate(min(n, bottlenecks) for n in STAGES):
        width = base_width * 2**stage
        for index in range(blocks):
            plan.append((c_in, width, 2 if stage and not index else 1))
            c_in = EXPANSION * width
    return plan


class Bottleneck(nn.Module):
    """Conv1x1-BN-ReLU, the three gated branches concatenated, BN-ReLU-Conv1x1-BN, + shortcut."""

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.convs = [
            nn.Conv2d(width, out, k, stride, dil * (k // 2), dil, bias=False)
            for (_, k, dil), out in zip(BRANCHES, branch_widths(width), strict=True)
        ]
        self.branches = nn.ModuleList(self.convs)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, EXPANSION * width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(EXPANSION * width)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != EXPANSION * width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, EXPANSION * width, 1, stride, bias=False),
                nn.BatchNorm2d(EXPANSION * width),
            )

    def finish(self, x: torch.Tensor, outs: list[torch.Tensor]) -> torch.Tensor:
        h = torch.relu(self.bn2(torch.cat(outs, 1)))
        return torch.relu(self.shortcut(x) + self.bn3(self.conv3(h)))

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x)))
        return self.finish(
            x, [conv(h * m.to(h.dtype)) for conv, m in zip(self.convs, masks, strict=True)]
        )

    def forward_kept(self, x: torch.Tensor, kept: list[list[int]]) -> torch.Tensor:
        """The bottleneck with branch ``r`` reading input channels ``kept[r]`` only; conv1 and
        bn1 compute the channels some branch reads, removed branches give zeros."""
        union = sorted(set().union(*kept))
        position = {c: i for i, c in enumerate(union)}
        if union:
            index = torch.tensor(union, device=x.device)
            h = F.conv2d(x, self.conv1.weight[index])
            h = torch.relu(batch_norm_subset(self.bn1, h, index))
        outs = []
        for conv, channels in zip(self.convs, kept, strict=True):
            if not channels:
                stride = conv.stride[0]
                zero = torch.zeros_like(x[:, :1, ::stride, ::stride])
                outs.append(zero.expand(-1, conv.out_channels, -1, -1))
                continue
            rows = torch.tensor([position[c] for c in channels], device=x.device)
            weight = conv.weight[:, torch.tensor(channels, device=x.device)]
            outs.append(
                F.conv2d(h[:, rows], weight, None, conv.stride, conv.padding, conv.dilation)
            )
        return self.finish(x, outs)


class ResNet50SupNet(SuperNet):
    """ResNet-50 with each 3x3 conv as gated 1x1 / 3x3 / dilated-3x3 branches (ImageNet prior)."""

    space_name = "resnet50"

    def __init__(
        self,
        base_width: int = 64,
        bottlenecks: int = 6,
        num_classes: int = 1000,
        in_channels: int = 3,
    ):
        super().__init__(
            base_width=base_width,
            bottlenecks=bottlenecks,
            num_classes=num_classes,
            in_channels=in_channels,
        )
        plan = stage_plan(base_width, bottlenecks)
        self.stem = imagenet_stem(in_channels, plan[0][0])
        self.bottlenecks = [Bottleneck(*step) for step in plan]
        self.blocks = nn.ModuleList(self.bottlenecks)
        self.head = nn.Linear(EXPANSION * plan[-1][1], num_classes)
        self.stage_of = [s for s, n in enumerate(STAGES) for _ in range(min(n, bottlenecks))]
        self.convs = [conv for block in self.bottlenecks for conv in block.convs]
        sizes = [conv.in_channels for conv in self.convs]
        self.offsets = [0, *torch.tensor(sizes).cumsum(0).tolist()]
        group_of = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
        self.layout = GateLayout("bernoulli", (self.offsets[-1],), group_of)

    def _run(self, images: torch.Tensor, block_fn) -> torch.Tensor:
        x = self.stem(images)
        for b, block in enumerate(self.bottlenecks):
            x = block_fn(block, x, 3 * b)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def forward(self, images: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        def block_fn(block: Bottleneck, x: torch.Tensor, first: int) -> torch.Tensor:
            masks = [
                gates[:, self.offsets[g] : self.offsets[g + 1], None, None]
                for g in range(first, first + 3)
            ]
            return block(x, masks)

        return self._run(images, block_fn)

    def kept_channels(self, arch: torch.Tensor) -> list[list[int]]:
        """Per branch conv (block by block): the indices of its kept input channels."""
        keep = (arch.detach().cpu() > 0.5).tolist()
        return [
            [c for c in range(self.offsets[g + 1] - self.offsets[g]) if keep[self.offsets[g] + c]]
            for g in range(len(self.convs))
        ]

    def forward_architecture(self, images: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        kept = self.kept_channels(arch)
        return self._run(
            images, lambda block, x, first: block.forward_kept(x, kept[first : first + 3])
        )

    def gated_parameters(self) -> list[nn.Parameter]:
        return [p for conv in self.convs for p in conv.parameters()]  # no biases

    def gated_sq_norms(self) -> torch.Tensor:
        return torch.cat([conv.weight.square().sum((0, 2, 3)) for conv in self.convs])

    def init_gate_logits(self, init_drop: float) -> torch.Tensor:
        return torch.full((len(self.convs),), math.log((1 - init_drop) / init_drop))

    def canonical(self, arch: torch.Tensor) -> torch.Tensor:
        return arch.clone()  # every kept channel of a branch reaches the output

    def mode(self, gate_logits: torch.Tensor) -> torch.Tensor:
        return (self.layout.expand_logits(gate_logits) > 0).float()

    def describe(self, arch: torch.Tensor) -> str:
        """Kept input channels of the 1x1+3x3+dilated branches per block, stage by stage."""
        kept = [len(k) for k in self.kept_channels(arch)]
        stages: dict[int, list[str]] = {}
        for b, stage in enumerate(self.stage_of):
            text = "+".join(str(k) if k else "-" for k in kept[3 * b : 3 * b + 3])
            stages.setdefault(stage, []).append(text)
        return " | ".join(f"s{s + 1}: " + " ".join(blocks) for s, blocks in stages.items())

    def gate_costs(self, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
        """Each channel gate charges the weight slice it switches (``conv_slice_costs``)."""
        return conv_slice_costs(self, self.convs, metric, image_size)

    def count_parameters(self, arch: torch.Tensor) -> int:
        total = sum(p.numel() for p in self.parameters())
        kept = self.kept_channels(arch)
        for b, block in enumerate(self.bottlenecks):
            width = block.conv1.out_channels
            union = set().union(*kept[3 * b : 3 * b + 3])
            total -= (width - len(union)) * (block.conv1.in_channels + 2)
            for conv, channels in zip(block.convs, kept[3 * b : 3 * b + 3], strict=True):
                total -= conv.weight[0, 0].numel() * conv.out_channels * (width - len(channels))
        return total

    def encode(self, arch: torch.Tensor) -> str:
        return encode_bits(arch)

    def decode(self, text: str) -> torch.Tensor:
        return decode_bits(text, self.layout.shape[0])

    def group_names(self) -> list[str]:
        names: list[str] = []
        index: dict[int, int] = {}
        for stage in self.stage_of:
            index[stage] = index.get(stage, 0) + 1
            names += [f"s{stage + 1}.b{index[stage]}.{name}" for name, _, _ in BRANCHES]
        return names

    def gate_statistics(self, gate_logits: torch.Tensor) -> dict[str, Any]:
        sizes = [conv.in_channels for conv in self.convs]
        mode = self.describe(self.mode(gate_logits))
        return keep_statistics(gate_logits, self.group_names(), sizes, sizes, "branches", mode)


def resnet50(
    base_width: int = 64, bottlenecks: int = 6, num_classes: int = 1000, in_channels: int = 3
) -> ResNet50SupNet:
    """Branched ResNet-50 (defaults: ResNet-50's stages and widths; small values for CPU)."""
    if base_width < 3:  # three branches share a bottleneck's width
        raise UserError(f"--base-width must be at least 3, got {base_width}")
    return ResNet50SupNet(base_width, bottlenecks, num_classes, in_channels)
