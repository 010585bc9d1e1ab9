"""The exact resnet50 sub-network of one gate vector: kept branch inputs and conv1 channels only."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.layers import imagenet_stem
from bayesnas.spaces.resnet.subnet import _kept
from bayesnas.spaces.resnet50.network import (
    BRANCHES,
    EXPANSION,
    ResNet50SupNet,
    branch_widths,
    stage_plan,
)


class SubBottleneck(nn.Module):
    """A bottleneck whose branch ``r`` reads its kept channels ``masks[r]`` of conv1's output.

    conv1 and bn1 hold only the channels some branch reads (``union``); a branch with no input
    is absent and gives zeros to ``bn2``, as in the super-network.
    """

    def __init__(self, c_in: int, width: int, stride: int, masks: list[str]):
        super().__init__()
        if len(masks) != len(BRANCHES):
            raise ValueError(f"expected {len(BRANCHES)} branch masks, got {len(masks)}")
        kept = [_kept(mask, width) for mask in masks]
        self.union = sorted(set().union(*kept))
        self.widths, self.stride = branch_widths(width), stride
        if self.union:
            self.conv1 = nn.Conv2d(c_in, len(self.union), 1, bias=False)
            self.bn1 = nn.BatchNorm2d(len(self.union))
        self.kept_in = {str(r): k for r, k in enumerate(kept) if k}
        self.branches = nn.ModuleDict()
        self.whole: set[str] = set()  # branches reading every channel conv1 computes
        for r, channels in self.kept_in.items():
            _, k, dil = BRANCHES[int(r)]
            out = self.widths[int(r)]
            self.branches[r] = nn.Conv2d(
                len(channels), out, k, stride, dil * (k // 2), dil, bias=False
            )
            rows = [self.union.index(c) for c in channels]
            if rows == list(range(len(self.union))):
                self.whole.add(r)
            self.register_buffer(f"rows{r}", torch.tensor(rows, dtype=torch.long), persistent=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, EXPANSION * width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(EXPANSION * width)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != EXPANSION * width:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, EXPANSION * width, 1, stride, bias=False),
                nn.BatchNorm2d(EXPANSION * width),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn1(self.conv1(x))) if self.union else x
        outs = []
        for r, out in enumerate(self.widths):
            if str(r) in self.branches:
                picked = h if str(r) in self.whole else h.index_select(1, getattr(self, f"rows{r}"))
                outs.append(self.branches[str(r)](picked))
            else:
                zero = torch.zeros_like(x[:, :1, :: self.stride, :: self.stride])
                outs.append(zero.expand(-1, out, -1, -1))
        h = torch.relu(self.bn2(torch.cat(outs, 1)))
        return torch.relu(self.shortcut(x) + self.bn3(self.conv3(h)))


class ResNet50SubNet(nn.Module):
    """The branched ResNet-50 cut to one architecture: ``branches`` holds, per bottleneck, the
    kept input channels of its 1x1, 3x3 and dilated branches as '0'/'1' strings."""

    def __init__(
        self,
        base_width: int,
        bottlenecks: int,
        num_classes: int,
        in_channels: int,
        branches: list[list[str]],
    ):
        super().__init__()
        plan = stage_plan(base_width, bottlenecks)
        if len(branches) != len(plan):
            raise ValueError(f"branches must list the masks of {len(plan)} bottlenecks")
        self.stem = imagenet_stem(in_channels, plan[0][0])
        self.bottlenecks = [
            SubBottleneck(*step, masks) for step, masks in zip(plan, branches, strict=True)
        ]
        self.blocks = nn.Sequential(*self.bottlenecks)
        self.head = nn.Linear(EXPANSION * plan[-1][1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(images))
        return self.head(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        """The spec entry: every branch's kept input channels as a '0'/'1' string."""
        bits = "".join("1" if g > 0.5 else "0" for g in arch.detach().cpu().tolist())
        assert isinstance(net, ResNet50SupNet)
        masks = [bits[net.offsets[g] : net.offsets[g + 1]] for g in range(len(net.convs))]
        return {"branches": [masks[b : b + 3] for b in range(0, len(masks), 3)]}

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        """This sub-network's state dict: the super-network's, with conv1/bn1 cut to the
        channels some branch reads and each branch to its kept inputs (removed: left out)."""
        state = {}
        for key, value in net.state_dict().items():
            parts = key.split(".")
            if parts[0] != "blocks" or parts[2] not in ("conv1", "bn1", "branches"):
                state[key] = value
                continue
            block = self.bottlenecks[int(parts[1])]
            if parts[2] == "branches":
                if parts[3] not in block.kept_in:
                    continue
                value = value[:, torch.tensor(block.kept_in[parts[3]])]
            elif not block.union:
                continue
            elif value.dim():
                value = value[torch.tensor(block.union)]
            state[key] = value
        return state
