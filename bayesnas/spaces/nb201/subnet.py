"""The exact NAS-Bench-201 sub-network of one cell architecture, for export (no mixture)."""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.layers import ReLUConvBN
from bayesnas.spaces.nb201.cell import CONV1, CONV3, EDGES, NONE, OPS, POOL, SKIP, live_nodes
from bayesnas.spaces.nb201.skeleton import skeleton

_OP_KEYS = {SKIP: "skip", CONV1: "conv1x1", CONV3: "conv3x3", POOL: "pool"}
_SUPER_KEY = re.compile(r"\.edges\.(conv1x1|conv3x3)_(\d)\.")  # sub-network key -> super's


class ZeroInputConv(nn.Module):
    """A conv op on an identically zero node: only its BatchNorm shift survives (no conv)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.zeros_like(x))


class SubCell(nn.Module):
    """A NAS-Bench-201 cell holding only the ops of one architecture that reach its output."""

    def __init__(self, channels: int, ops: tuple[int, ...]):
        super().__init__()
        self.edges = nn.ModuleDict()
        self.plan: list[tuple[str, int, int]] = []  # (op key, to node, from node)
        live, present = live_nodes(ops), [True, False, False, False]
        for edge, (to, src) in enumerate(EDGES):
            op = ops[edge]
            if op == NONE or not live[to] or (not present[src] and op in (SKIP, POOL)):
                continue  # no effect on the output: 'none', a dead node, or zero passed on
            key = f"{_OP_KEYS[op]}_{edge}"
            if op == SKIP:
                self.edges[key] = nn.Identity()
            elif op == POOL:  # one ONNX op, same as the super-network's BoxAverage3x3
                self.edges[key] = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
            elif present[src]:
                self.edges[key] = ReLUConvBN(channels, channels, 1 if op == CONV1 else 3)
            else:  # the cell input stands in for the zero node: only its shape is used
                self.edges[key], src = ZeroInputConv(channels), 0
            self.plan.append((key, to, src))
            present[to] = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for key, to, src in self.plan:
            out = self.edges[key](nodes[src])
            nodes[to] = out if nodes[to] is None else nodes[to] + out
        return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class NB201SubNet(nn.Module):
    """The NAS-Bench-201 macro skeleton around cells of one architecture (``ops``: op names)."""

    def __init__(
        self, channels: int, cells: int, num_classes: int, in_channels: int, ops: list[str]
    ):
        super().__init__()
        if len(ops) != len(EDGES) or not set(ops) <= set(OPS):
            raise ValueError(f"ops must be {len(EDGES)} names from {OPS}, got {ops!r}")
        indices = tuple(OPS.index(op) for op in ops)
        stem, layers, head = skeleton(
            channels, cells, num_classes, in_channels, lambda width: SubCell(width, indices)
        )
        self.stem, self.layers, self.head = stem, nn.Sequential(*layers), head  # in this order

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(images)))

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        """The spec entries naming the chosen op of every edge."""
        return {"ops": [OPS[i] for i in arch.argmax(-1).tolist()]}

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        """This sub-network's state dict taken from the super-network's (chosen ops only)."""
        source = net.state_dict()
        return {key: source[_SUPER_KEY.sub(r".\1.\2.", key)] for key in self.state_dict()}
