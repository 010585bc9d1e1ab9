"""DenseNet-121, the PGNAS ImageNet prior, with one keep gate per incoming edge of a dense layer.

A dense layer reads the concatenation of its block's input and of every earlier layer's output
in the block; each of these incoming edges has one Bernoulli keep gate (the paper's "one p per
incoming edge"), which multiplies the edge's channels at the input of the layer's 1x1 conv. A
draw therefore drops whole connections, and the exact sub-network leaves a dropped edge's
channels out of the concatenation, of ``norm1`` and of ``conv1``. Layer outputs always reach
the transition, so every layer runs. Defaults: DenseNet-121 (growth 32, 6/12/24/16 layers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.gates import GateLayout
from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.keep_gates import decode_bits, encode_bits, keep_statistics
from bayesnas.spaces.layers import batch_norm_subset, imagenet_stem

BLOCKS = (6, 12, 24, 16)  # dense layers per block in DenseNet-121
BN_SIZE = 4  # the bottleneck conv has BN_SIZE x growth output channels


def transition(c_in: int, c_out: int) -> nn.Sequential:
    """BN-ReLU-Conv1x1 halving the channels, then 2x2 average pooling (ceil: tiny inputs work)."""
    return nn.Sequential(
        nn.BatchNorm2d(c_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.AvgPool2d(2, 2, ceil_mode=True),
    )


def block_plan(growth: int, dense_layers: int) -> list[tuple[int, int]]:
    """(input channels, layers) of each dense block."""
    plan, channels = [], 2 * growth
    for b, layers in enumerate(min(n, dense_layers) for n in BLOCKS):
        plan.append((channels, layers))
        channels += layers * growth
        if b < len(BLOCKS) - 1:
            channels //= 2
    return plan


class DenseLayer(nn.Module):
    """DenseNet-B's layer: BN-ReLU-Conv1x1 to 4k channels, BN-ReLU-Conv3x3 to k channels.

    ``sizes``: channels of each incoming edge (the block input, then k per earlier layer);
    ``first_edge``: the global gate index of its first edge.
    """

    edge_of_channel: torch.Tensor

    def __init__(self, sizes: list[int], growth: int, first_edge: int):
        super().__init__()
        self.sizes, self.first_edge = sizes, first_edge
        self.starts = [0, *torch.tensor(sizes).cumsum(0).tolist()]
        self.norm1 = nn.BatchNorm2d(sum(sizes))
        self.conv1 = nn.Conv2d(sum(sizes), BN_SIZE * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(BN_SIZE * growth)
        self.conv2 = nn.Conv2d(BN_SIZE * growth, growth, 3, padding=1, bias=False)
        edges = torch.arange(first_edge, first_edge + len(sizes))
        edge_of = torch.repeat_interleave(edges, torch.tensor(sizes))
        self.register_buffer("edge_of_channel", edge_of, persistent=False)

    def tail(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv2(torch.relu(self.norm2(h)))

    def forward(self, features: list[torch.Tensor], gates: torch.Tensor) -> torch.Tensor:
        """The layer's output with per-example edge gates ``gates [B, all edges]``."""
        h = torch.relu(self.norm1(torch.cat(features, 1)))
        mask = gates.index_select(1, self.edge_of_channel)[:, :, None, None]
        return self.tail(self.conv1(h * mask.to(h.dtype)))

    def forward_kept(self, features: list[torch.Tensor], kept: list[int]) -> torch.Tensor:
        """The layer reading only its kept edges ``kept`` (dropped channels never computed);
        with none kept, conv1's output is zero and only the BN shift passes on."""
        if not kept:
            return self.tail(
                torch.zeros_like(features[0][:, :1]).expand(-1, self.norm2.num_features, -1, -1)
            )
        index = torch.cat([torch.arange(self.starts[j], self.starts[j + 1]) for j in kept])
        index = index.to(features[0].device)
        h = torch.cat([features[j] for j in kept], 1)
        h = torch.relu(batch_norm_subset(self.norm1, h, index))
        return self.tail(F.conv2d(h, self.conv1.weight[:, index]))


LayerFn = Callable[[DenseLayer, list[torch.Tensor]], torch.Tensor]


class DenseNetSupNet(SuperNet):
    """DenseNet-121 (PGNAS's ImageNet prior): one keep gate per incoming edge of a dense layer."""

    space_name = "densenet121"
    edge_of_channel: torch.Tensor

    def __init__(
        self,
        growth: int = 32,
        dense_layers: int = 24,
        num_classes: int = 1000,
        in_channels: int = 3,
    ):
        super().__init__(
            growth=growth,
            dense_layers=dense_layers,
            num_classes=num_classes,
            in_channels=in_channels,
        )
        self.stem = imagenet_stem(in_channels, 2 * growth)
        self.transitions = nn.ModuleList()
        self.block_layers: list[list[DenseLayer]] = []
        edges = 0
        for b, (c_in, layers) in enumerate(block_plan(growth, dense_layers)):
            block = []
            for i in range(layers):
                block.append(DenseLayer([c_in] + [growth] * i, growth, edges))
                edges += i + 1
            self.block_layers.append(block)
            c_out = c_in + layers * growth
            if b < len(BLOCKS) - 1:
                self.transitions.append(transition(c_out, c_out // 2))
        self.final_norm = nn.BatchNorm2d(c_out)
        self.head = nn.Linear(c_out, num_classes)
        self.blocks = nn.ModuleList(nn.ModuleList(block) for block in self.block_layers)
        self.layers = [layer for block in self.block_layers for layer in block]
        self.edge_sizes = torch.tensor([s for layer in self.layers for s in layer.sizes])
        edge_of = torch.cat([layer.edge_of_channel for layer in self.layers])
        self.register_buffer("edge_of_channel", edge_of, persistent=False)
        self.layout = GateLayout("bernoulli", (edges,), torch.arange(edges))

    def _run(self, images: torch.Tensor, layer_fn: LayerFn) -> torch.Tensor:
        x = self.stem(images)
        for b, block in enumerate(self.block_layers):
            features = [x]
            for layer in block:
                features.append(layer_fn(layer, features))
            x = torch.cat(features, 1)
            if b < len(self.transitions):
                x = self.transitions[b](x)
        x = torch.relu(self.final_norm(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    def forward(self, images: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        return self._run(images, lambda layer, features: layer(features, gates))

    def forward_architecture(self, images: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        keep = (arch.detach().cpu() > 0.5).tolist()

        def layer_fn(layer: DenseLayer, features: list[torch.Tensor]) -> torch.Tensor:
            kept = [j for j in range(len(layer.sizes)) if keep[layer.first_edge + j]]
            return layer.forward_kept(features, kept)

        return self._run(images, layer_fn)

    def gated_parameters(self) -> list[nn.Parameter]:
        return [p for layer in self.layers for p in layer.conv1.parameters()]  # no biases

    def gated_sq_norms(self) -> torch.Tensor:
        per_channel = torch.cat(
            [layer.conv1.weight.square().sum((0, 2, 3)) for layer in self.layers]
        )
        edges = per_channel.new_zeros(self.layout.shape)
        return edges.index_add(0, self.edge_of_channel, per_channel)

    def init_gate_logits(self, init_drop: float) -> torch.Tensor:
        return torch.full(self.layout.shape, math.log((1 - init_drop) / init_drop))

    def canonical(self, arch: torch.Tensor) -> torch.Tensor:
        return arch.clone()  # every edge reaches the output: each gate changes the function

    def mode(self, gate_logits: torch.Tensor) -> torch.Tensor:
        return (self.layout.expand_logits(gate_logits) > 0).float()

    def describe(self, arch: torch.Tensor) -> str:
        """Kept incoming edges per layer, block by block (layer i has i edges in all)."""
        keep = (arch.detach().cpu() > 0.5).tolist()
        blocks = []
        for b, block in enumerate(self.block_layers):
            kept = [
                sum(keep[layer.first_edge : layer.first_edge + len(layer.sizes)]) for layer in block
            ]
            blocks.append(f"b{b + 1}: " + " ".join(map(str, kept)))
        return " | ".join(blocks)

    def count_parameters(self, arch: torch.Tensor) -> int:
        dropped = int((self.edge_sizes * (arch.detach().cpu() < 0.5)).sum())
        bottleneck = self.layers[0].conv1.out_channels
        return sum(p.numel() for p in self.parameters()) - dropped * (2 + bottleneck)

    def encode(self, arch: torch.Tensor) -> str:
        return encode_bits(arch)

    def decode(self, text: str) -> torch.Tensor:
        return decode_bits(text, self.layout.shape[0])

    def edge_names(self) -> list[str]:
        """``s<block>.l<layer>.<source>``: source ``in`` (the block input) or ``l<layer>``."""
        return [
            f"s{b + 1}.l{i + 1}." + ("in" if j == 0 else f"l{j}")
            for b, block in enumerate(self.block_layers)
            for i in range(len(block))
            for j in range(i + 1)
        ]

    def gate_statistics(self, gate_logits: torch.Tensor) -> dict[str, Any]:
        sizes = self.edge_sizes.tolist()
        return keep_statistics(
            gate_logits,
            self.edge_names(),
            sizes,
            [1] * len(sizes),
            "connections",
            self.describe(self.mode(gate_logits)),
        )


def densenet121(
    growth: int = 32, dense_layers: int = 24, num_classes: int = 1000, in_channels: int = 3
) -> DenseNetSupNet:
    """DenseNet-121 (defaults: 7.98 M parameters at 1000 classes; small values for CPU)."""
    return DenseNetSupNet(growth, dense_layers, num_classes, in_channels)
