"""The NAS-Bench-201 cell space: 4-node cells with 6 edges, one of 5 ops per edge.

The macro skeleton is the benchmark's: a 3x3 stem conv to C, three stages of N cells at C, 2C
and 4C joined by residual reduction blocks, then BN-ReLU, global pooling and a linear head. All
cells share one architecture, so the gate is one categorical variable per edge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.gates import GateLayout
from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.layers import BoxAverage3x3, ReLUConvBN
from bayesnas.spaces.nb201 import cell as notation
from bayesnas.spaces.nb201 import costs
from bayesnas.spaces.nb201.cell import CONV1, CONV3, EDGES, NONE, OPS, POOL, SKIP, from_string
from bayesnas.spaces.nb201.mixture import ALL, NO_ROWS, ONLY, Rows, mixture_plan, support_plan
from bayesnas.spaces.nb201.skeleton import skeleton


class Cell(nn.Module):
    """A NAS-Bench-201 cell holding every candidate op of every edge."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1x1 = nn.ModuleList(ReLUConvBN(channels, channels, 1) for _ in EDGES)
        self.conv3x3 = nn.ModuleList(ReLUConvBN(channels, channels, 3) for _ in EDGES)
        self.pool = BoxAverage3x3(channels)

    def apply_op(self, edge: int, op: int, x: torch.Tensor, pooled=None) -> torch.Tensor:
        """Output of candidate ``op`` on ``edge`` (never called for 'none')."""
        if op == SKIP:
            return x
        if op == POOL:
            return self.pool(x) if pooled is None else pooled
        return (self.conv1x1 if op == CONV1 else self.conv3x3)[edge](x)

    def forward_mixture(
        self,
        x: torch.Tensor,
        weights: torch.Tensor,
        plan: list[list[Rows]],
        aux_skip: float = 0.0,
        skip_dropout: float = 0.0,
    ) -> torch.Tensor:
        """Per-example relaxed mixture of the ops; ``weights`` is ``[B, 6, 5]`` and
        ``plan[e][op]`` says how op ``op`` of edge ``e`` is computed: on the whole batch (ALL),
        on the whole batch with weight exactly 1 (ONLY), on a few examples only (an index
        tensor), or not at all (NO_ROWS); see ``mixture_plan``.
        ``aux_skip`` adds that multiple of every edge's input to its output, outside the
        mixture (DARTS-'s auxiliary skip; 0 leaves the cell as it is). ``skip_dropout`` drops
        that share of every skip op's output elements, scaling the rest up (P-DARTS).
        The mixture is summed in the activations' dtype (bf16 under CUDA autocast)."""
        weights = weights.to(x.dtype)
        nodes: list[torch.Tensor] = [x]
        pooled: dict[int, torch.Tensor] = {}  # a node's pooling, shared by its out-edges
        for node in (1, 2, 3):
            total: torch.Tensor | None = None
            for edge, (to, src) in enumerate(EDGES):
                if to != node:
                    continue
                for op in (SKIP, CONV1, CONV3, POOL):
                    rows = plan[edge][op]
                    if rows is NO_ROWS:
                        continue
                    if rows is ALL or rows is ONLY:
                        if op == POOL and src not in pooled:
                            pooled[src] = self.pool(nodes[src])
                        term = self.apply_op(edge, op, nodes[src], pooled.get(src))
                        if op == SKIP and skip_dropout:
                            term = F.dropout(term, skip_dropout, self.training)
                        if rows is ALL:
                            term = weights[:, edge, op].view(-1, 1, 1, 1) * term
                        total = term if total is None else total + term
                        continue
                    index = cast(torch.Tensor, rows)  # the examples that compute this op
                    out = self.apply_op(edge, op, nodes[src][index])
                    if op == SKIP and skip_dropout:
                        out = F.dropout(out, skip_dropout, self.training)
                    term = (weights[index, edge, op].view(-1, 1, 1, 1) * out).to(x.dtype)
                    base = torch.zeros_like(x) if total is None else total
                    total = base.index_add(0, index, term)
                if aux_skip:
                    term = aux_skip * nodes[src]
                    total = term if total is None else total + term
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]

    def forward_ops(self, x: torch.Tensor, ops: tuple[int, ...]) -> torch.Tensor:
        """One architecture: only the chosen ops on edges that reach the output are computed."""
        live = notation.live_nodes(ops)
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for edge, (to, src) in enumerate(EDGES):
            op = ops[edge]
            if op == NONE or not live[to]:
                continue
            inp = nodes[src]
            if inp is None:  # a zero node: pooling and skip give zero, a conv gives its BN shift
                if op in (SKIP, POOL):
                    continue
                inp = torch.zeros_like(x)
            out = self.apply_op(edge, op, inp)
            before = nodes[to]
            nodes[to] = out if before is None else before + out
        result = nodes[3]
        return result if result is not None else torch.zeros_like(x)


class NB201Net(SuperNet):
    """NAS-Bench-201 super-network with C channels and N cells per stage."""

    space_name = "nb201"

    def __init__(
        self, channels: int = 16, cells: int = 5, num_classes: int = 10, in_channels: int = 3
    ):
        super().__init__(
            channels=channels, cells=cells, num_classes=num_classes, in_channels=in_channels
        )
        self.layout = GateLayout("categorical", (len(EDGES), len(OPS)))
        # aux_skip (DARTS-'s auxiliary skip) and skip_dropout (P-DARTS's dropout after skip
        # ops) are set by the search's schedule; fixed_plan by a captured step (``support_plan``)
        self.plan_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None  # ``share_plan``
        stem, layers, head = skeleton(channels, cells, num_classes, in_channels, Cell)
        self.stem, self.layers, self.head = stem, nn.ModuleList(layers), head  # in this order

    def _run(self, images: torch.Tensor, cell_fn) -> torch.Tensor:
        x = self.stem(images)
        for layer in self.layers:
            x = cell_fn(layer, x) if isinstance(layer, Cell) else layer(x)
        return self.head(x)

    def forward(self, images: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        gates = gates.to(images.dtype)
        plan = self.fixed_plan or mixture_plan(gates.detach(), self.plan_reduce)
        aux, drop = self.aux_skip, self.skip_dropout
        return self._run(images, lambda cell, x: cell.forward_mixture(x, gates, plan, aux, drop))

    def forward_architecture(self, images: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        ops = tuple(int(i) for i in arch.argmax(-1).tolist())
        return self._run(images, lambda cell, x: cell.forward_ops(x, ops))

    def share_plan(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Ops run are chosen from the global batch's counts (``mixture_plan``)."""
        self.plan_reduce = reduce

    def support_plan(self, gate_logits: torch.Tensor) -> list[list[Rows]]:
        """Every op q can draw runs on the whole batch: static shapes, no host read per step."""
        return support_plan(gate_logits)

    def gate_costs(self, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
        return costs.gate_costs(self, metric, image_size)

    def latency_table(self, image_size: int) -> tuple[float, torch.Tensor]:
        return costs.latency_table(self, image_size)

    def cells(self) -> list[Cell]:
        return [layer for layer in self.layers if isinstance(layer, Cell)]

    def gated_parameters(self) -> list[nn.Parameter]:
        return [cast(nn.Parameter, conv.weight) for conv in self._gated_convs()]

    def _gated_convs(self) -> list[nn.Conv2d]:
        """The conv of every conv op: edge-major per cell, 1x1 before 3x3 (gated_parameters)."""
        cells = self.cells()
        return [cast(ReLUConvBN, m).conv for c in cells for m in (*c.conv1x1, *c.conv3x3)]

    def gated_sq_norms(self) -> torch.Tensor:
        weight = cast(nn.Conv2d, self.stem[0]).weight
        norms = torch.zeros(self.layout.shape, device=weight.device, dtype=weight.dtype)
        for cell in self.cells():
            for edge in range(len(EDGES)):
                for op, convs in ((CONV1, cell.conv1x1), (CONV3, cell.conv3x3)):
                    norms[edge, op] += cast(ReLUConvBN, convs[edge]).conv.weight.square().sum()
        return norms

    def init_gate_logits(self, init_drop: float) -> torch.Tensor:
        return torch.zeros(self.layout.shape)

    def canonical(self, arch: torch.Tensor) -> torch.Tensor:
        ops = notation.canonical_ops(tuple(int(i) for i in arch.argmax(-1).tolist()))
        return nn.functional.one_hot(torch.tensor(ops), len(OPS)).to(arch)

    def mode(self, gate_logits: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(gate_logits.argmax(-1), len(OPS)).float()

    def describe(self, arch: torch.Tensor) -> str:
        return notation.to_string(tuple(int(i) for i in arch.argmax(-1).tolist()))

    def gate_statistics(self, gate_logits: torch.Tensor) -> dict[str, Any]:
        probs = torch.softmax(gate_logits.detach().float().cpu(), -1)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
        return {
            "edges": [
                {
                    "edge": f"{to}<-{src}",
                    "probs": dict(zip(OPS, probs[e].tolist(), strict=True)),
                    "entropy": float(entropy[e]),
                }
                for e, (to, src) in enumerate(EDGES)
            ],
            "mode": self.describe(self.mode(gate_logits)),
        }

    def count_parameters(self, arch: torch.Tensor) -> int:
        ops = notation.canonical_ops(tuple(int(i) for i in arch.argmax(-1).tolist()))
        zero = notation.zero_nodes(ops)
        skeleton = sum(p.numel() for m in (self.stem, self.head) for p in m.parameters())
        total = skeleton + sum(
            p.numel()
            for layer in self.layers
            if not isinstance(layer, Cell)
            for p in layer.parameters()
        )
        for cell in self.cells():
            for edge, (_, src) in enumerate(EDGES):
                if ops[edge] in (CONV1, CONV3):
                    module = (cell.conv1x1 if ops[edge] == CONV1 else cell.conv3x3)[edge]
                    used = module.bn if zero[src] else module  # a conv of zero is its BN shift
                    total += sum(p.numel() for p in cast(nn.Module, used).parameters())
        return total

    def encode(self, arch: torch.Tensor) -> str:
        return self.describe(arch)

    def decode(self, text: str) -> torch.Tensor:
        return self.architecture(text)

    def architecture(self, text: str) -> torch.Tensor:
        """The one-hot gate tensor of a NAS-Bench-201 string."""
        ops = from_string(text)
        return nn.functional.one_hot(torch.tensor(ops), len(OPS)).float()


def nb201(
    channels: int = 16, cells: int = 5, num_classes: int = 10, in_channels: int = 3
) -> NB201Net:
    """NAS-Bench-201 (C=16, N=5 are the benchmark's networks)."""
    return NB201Net(channels, cells, num_classes, in_channels)
