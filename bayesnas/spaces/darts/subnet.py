"""DARTS's evaluation network of one genotype: the exact sub-network for export and training.

The same stem, cells and head as the search network, each cell holding only its genotype's 8
ops (two per node), so it computes only what it keeps. For training (``bayesnas train``) it has
DARTS's extras: drop-path on every op but identity (``drop_path_prob``, set per epoch by the
trainer) and, with ``auxiliary``, the auxiliary head after 2/3 of the cells (its logits from
``forward_with_auxiliary``; ``forward`` returns the main logits only, as exports expect).
"""

from __future__ import annotations

import re
from typing import Any, cast

import torch
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.darts.genotype import NODES, Pairs, parse_genotype
from bayesnas.spaces.darts.network import edge_index, genotype_of
from bayesnas.spaces.darts.ops import (
    CellShape,
    auxiliary_position,
    drop_path,
    make_op,
    preprocessing,
    skeleton,
    stem,
)

_OP_KEY = re.compile(r"^cells\.(\d+)\.ops\.e(\d+)\.")


class EvalCell(nn.Module):
    """A DARTS cell of one genotype: two ops per intermediate node."""

    def __init__(self, shape: CellShape, pairs: Pairs):
        super().__init__()
        self.preprocess0, self.preprocess1 = preprocessing(shape)
        self.ops = nn.ModuleDict()
        self.plan: list[tuple[str, int]] = []  # (op key, input state), two per node
        self.op_names: dict[str, str] = {}
        for node in range(NODES):
            for op, src in pairs[2 * node : 2 * node + 2]:
                key = f"e{edge_index(node + 2, src)}"
                stride = 2 if shape.reduction and src < 2 else 1
                self.ops[key] = make_op(op, shape.channels, stride)
                self.op_names[key] = op
                self.plan.append((key, src))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(NODES):
            total = None
            for key, src in self.plan[2 * node : 2 * node + 2]:
                op = self.ops[key]
                out = op(states[src])
                if self.training and drop_prob > 0 and not isinstance(op, nn.Identity):
                    out = drop_path(out, drop_prob)
                total = out if total is None else total + out
            states.append(total)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary classifier on an 8x8 map (ceil mode lets 7x7 maps in too)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False, ceil_mode=True),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class DartsNetwork(nn.Module):
    """DARTS's evaluation network of ``genotype`` (DARTS notation) with C and cells given."""

    def __init__(
        self,
        channels: int,
        cells: int,
        num_classes: int,
        in_channels: int,
        genotype: str,
        auxiliary: bool = False,
    ):
        super().__init__()
        parsed = parse_genotype(genotype)
        self.drop_path_prob = 0.0  # DARTS raises it linearly over training; 0 in evaluation
        self.stem = stem(in_channels, channels)
        shapes, width = skeleton(channels, cells)
        self.cells = nn.ModuleList(
            EvalCell(shape, parsed.reduce if shape.reduction else parsed.normal) for shape in shapes
        )
        self.aux_after = auxiliary_position(cells)
        self.auxiliary = (
            AuxiliaryHead(shapes[self.aux_after].channels * NODES, num_classes)
            if auxiliary and self.aux_after < cells
            else None
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes)
        )

    def forward_with_auxiliary(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Main logits and, in training with an auxiliary head, the auxiliary logits."""
        s0 = s1 = self.stem(images)
        aux = None
        for index, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if index == self.aux_after and self.auxiliary is not None and self.training:
                aux = self.auxiliary(s1)
        return self.head(s1), aux

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_with_auxiliary(images)[0]

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        """The spec entry naming the architecture: its genotype in DARTS's notation."""
        return {"genotype": str(genotype_of(arch))}

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        """This network's state dict taken from the search network's (kept ops only)."""
        source = net.state_dict()

        def super_key(key: str) -> str:
            match = _OP_KEY.match(key)
            if match is None:
                return key
            cell, edge = match.groups()
            op = cast(EvalCell, self.cells[int(cell)]).op_names[f"e{edge}"]
            return f"cells.{cell}.edges.{edge}.{op}." + key[match.end() :]

        return {key: source[super_key(key)] for key in self.state_dict()}

    def without_auxiliary(self) -> DartsNetwork:
        """This network with its auxiliary head removed (training-only; DARTS does not count
        it, and an exported network has none)."""
        self.auxiliary = None
        return self
