"""The exact SupNet-M (resnet) sub-network of one gate vector: kept channels and branches only."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.resnet.network import Branch, ResNetSupNet, ShakeShortcut


def _kept(mask: str, size: int) -> list[int]:
    """Kept channel indices of a '0'/'1' mask string of length ``size``."""
    if len(mask) != size or set(mask) - {"0", "1"}:
        raise ValueError(f"expected a mask of {size} '0'/'1' characters, got {mask!r}")
    return [i for i, c in enumerate(mask) if c == "1"]


class SubBranch(nn.Module):
    """A residual branch cut to its kept input channels and kept middle channels."""

    def __init__(self, c_in: int, c_out: int, stride: int, kept_in: list[int], mid: list[int]):
        super().__init__()
        self.kept_in, self.kept_mid = kept_in, mid
        self.select = len(kept_in) < c_in  # gather the kept input channels (else take all)
        self.index: torch.Tensor
        self.register_buffer("index", torch.tensor(kept_in, dtype=torch.long), persistent=False)
        self.conv1 = nn.Conv2d(len(kept_in), len(mid), 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(len(mid))
        self.conv2 = nn.Conv2d(len(mid), c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.select:
            x = x.index_select(1, self.index)
        h = torch.relu(self.bn1(self.conv1(torch.relu(x))))
        return self.bn2(self.conv2(h))

    def weights_from(self, branch: Branch) -> dict[str, torch.Tensor]:
        """The super-network ``branch``'s weights sliced to the kept channels."""
        kin, mid = torch.tensor(self.kept_in), torch.tensor(self.kept_mid)
        state = {}
        for key, value in branch.state_dict().items():
            if key == "conv1.weight":
                value = value[mid][:, kin]
            elif key == "conv2.weight":
                value = value[:, mid]
            elif key.startswith("bn1.") and value.dim():
                value = value[mid]
            state[key] = value
        return state


class SubBlock(nn.Module):
    """Shortcut plus half of each kept branch; removed branches are absent."""

    def __init__(self, c_in: int, c_out: int, stride: int, branches: list[dict | None]):
        super().__init__()
        self.branches = nn.ModuleDict(
            {
                str(r): SubBranch(c_in, c_out, stride, _kept(b["in"], c_in), _kept(b["mid"], c_out))
                for r, b in enumerate(branches)
                if b is not None
            }
        )
        same = c_in == c_out and stride == 1
        self.shortcut = nn.Identity() if same else ShakeShortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shortcut(x)
        for branch in self.branches.values():
            out = out + 0.5 * branch(x)
        return out


class ResNetSubNet(nn.Module):
    """SupNet-M with its branches cut to one architecture (``branches``: per block, per branch,
    the kept input and middle channel masks, or None for a removed branch)."""

    def __init__(
        self,
        width: int,
        blocks: int,
        num_classes: int,
        in_channels: int,
        stem_channels: int,
        branches: list[list[dict | None]],
    ):
        super().__init__()
        if len(branches) != 3 * blocks or any(len(b) != 2 for b in branches):
            raise ValueError(f"branches must list 2 branches for each of {3 * blocks} blocks")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        self.blocks = nn.Sequential()
        c_in = stem_channels
        for stage in range(3):
            c_out = width * 2**stage
            for index in range(blocks):
                stride = 2 if stage and not index else 1
                self.blocks.append(SubBlock(c_in, c_out, stride, branches[len(self.blocks)]))
                c_in = c_out
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(images))
        return self.head(nn.functional.adaptive_avg_pool2d(torch.relu(x), 1).flatten(1))

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        """The spec entries: kept input and middle channel masks of every surviving branch."""
        net = cast(ResNetSupNet, net)
        arch = net.canonical(arch).detach().cpu()
        masks = [
            "".join("1" if g else "0" for g in arch[net.offsets[i] : net.offsets[i + 1]].tolist())
            for i in range(len(net.convs))
        ]
        pairs = [
            {"in": masks[c], "mid": masks[c + 1]} if "1" in masks[c] else None
            for c in range(0, len(masks), 2)
        ]
        return {"branches": [pairs[b : b + 2] for b in range(0, len(pairs), 2)]}

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        """This sub-network's state dict: the super-network's, branches sliced or left out."""
        net = cast(ResNetSupNet, net)
        state = {k: v for k, v in net.state_dict().items() if ".branches." not in k}
        for b, block in enumerate(cast(list[SubBlock], self.blocks)):
            for r, branch in block.branches.items():
                source = cast(SubBranch, branch).weights_from(net.blocks[b].branches[int(r)])
                state.update({f"blocks.{b}.branches.{r}.{k}": v for k, v in source.items()})
        return state
