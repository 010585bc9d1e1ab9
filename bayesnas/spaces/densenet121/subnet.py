"""The exact densenet121 sub-network of one edge-gate vector: dropped connections removed."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.densenet121.network import (
    BLOCKS,
    BN_SIZE,
    DenseNetSupNet,
    block_plan,
    transition,
)
from bayesnas.spaces.layers import imagenet_stem


class SubDenseLayer(nn.Module):
    """A dense layer reading only its kept incoming edges (``mask``: '1' per kept edge).

    With no edge kept it has no ``norm1``/``conv1``: its bottleneck is zero, and only the
    ``norm2`` shift reaches ``conv2``, exactly as in the super-network.
    """

    def __init__(self, sizes: list[int], growth: int, mask: str):
        super().__init__()
        if len(mask) != len(sizes) or set(mask) - {"0", "1"}:
            raise ValueError(f"expected {len(sizes)} '0'/'1' edge gates, got {mask!r}")
        self.kept = [j for j, bit in enumerate(mask) if bit == "1"]
        self.sizes = sizes
        self.bottleneck = BN_SIZE * growth
        kept_channels = sum(sizes[j] for j in self.kept)
        if self.kept:
            self.norm1 = nn.BatchNorm2d(kept_channels)
            self.conv1 = nn.Conv2d(kept_channels, self.bottleneck, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(self.bottleneck)
        self.conv2 = nn.Conv2d(self.bottleneck, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.kept:
            x = torch.cat([features[j] for j in self.kept], 1)
            h = self.conv1(torch.relu(self.norm1(x)))
        else:
            h = torch.zeros_like(features[0][:, :1]).expand(-1, self.bottleneck, -1, -1)
        return self.conv2(torch.relu(self.norm2(h)))

    def kept_channels(self) -> torch.Tensor:
        """Indices of the kept channels in the super-network layer's input."""
        starts = [0, *torch.tensor(self.sizes).cumsum(0).tolist()]
        ranges = [torch.arange(starts[j], starts[j + 1]) for j in self.kept]
        return torch.cat(ranges) if ranges else torch.zeros(0, dtype=torch.long)


class DenseNetSubNet(nn.Module):
    """DenseNet-121 cut to one architecture: ``edges`` holds, per block and layer, a '0'/'1'
    string with one character per incoming edge (block input first)."""

    def __init__(
        self,
        growth: int,
        dense_layers: int,
        num_classes: int,
        in_channels: int,
        edges: list[list[str]],
    ):
        super().__init__()
        plan = block_plan(growth, dense_layers)
        if len(edges) != len(plan) or any(
            len(e) != n for e, (_, n) in zip(edges, plan, strict=True)
        ):
            raise ValueError(f"edges must list {[n for _, n in plan]} layers per block")
        self.stem = imagenet_stem(in_channels, 2 * growth)
        self.transitions = nn.ModuleList()
        self.block_layers: list[list[SubDenseLayer]] = []
        for b, (c_in, layers) in enumerate(plan):
            self.block_layers.append(
                [SubDenseLayer([c_in] + [growth] * i, growth, edges[b][i]) for i in range(layers)]
            )
            c_out = c_in + layers * growth
            if b < len(BLOCKS) - 1:
                self.transitions.append(transition(c_out, c_out // 2))
        self.blocks = nn.ModuleList(nn.ModuleList(block) for block in self.block_layers)
        self.final_norm = nn.BatchNorm2d(c_out)
        self.head = nn.Linear(c_out, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        for b, block in enumerate(self.block_layers):
            features = [x]
            for layer in block:
                features.append(layer(features))
            x = torch.cat(features, 1)
            if b < len(self.transitions):
                x = self.transitions[b](x)
        x = torch.relu(self.final_norm(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        """The spec entry: each layer's edge gates as a '0'/'1' string."""
        assert isinstance(net, DenseNetSupNet)
        bits = "".join("1" if g > 0.5 else "0" for g in arch.detach().cpu().tolist())
        return {
            "edges": [
                [bits[layer.first_edge : layer.first_edge + len(layer.sizes)] for layer in block]
                for block in net.block_layers
            ]
        }

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        """This sub-network's state dict: the super-network's, each norm1/conv1 cut to the
        kept channels (left out where no edge is kept)."""
        state = {}
        for key, value in net.state_dict().items():
            parts = key.split(".")
            if parts[0] != "blocks" or parts[3] not in ("norm1", "conv1"):
                state[key] = value
                continue
            layer = self.block_layers[int(parts[1])][int(parts[2])]
            if not layer.kept:
                continue
            index = layer.kept_channels()
            if parts[3] == "conv1":
                value = value[:, index]
            elif value.dim():
                value = value[index]
            state[key] = value
        return state
