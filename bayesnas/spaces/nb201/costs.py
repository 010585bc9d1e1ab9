"""nb201's costs per (edge, op): parameters and FLOPs for the cost-aware prior, and a latency
table; the network's ``gate_costs`` and ``latency_table`` hooks call them."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch

from bayesnas.spaces.costs import example_image, flops
from bayesnas.spaces.latency import median_ms
from bayesnas.spaces.nb201.cell import CONV1, CONV3, EDGES, OPS, POOL

if TYPE_CHECKING:
    from bayesnas.spaces.nb201.network import Cell, NB201Net


def cell_inputs(net: NB201Net, image: torch.Tensor) -> list[torch.Size]:
    """The input shape of every cell, in order (the cells pass their input through)."""
    shapes: list[torch.Size] = []

    def record(cell: Cell, x: torch.Tensor) -> torch.Tensor:
        shapes.append(x.shape)
        return x

    with torch.no_grad():
        net._run(image, record)
    return shapes


def gate_costs(net: NB201Net, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
    """One cost per (edge, op), summed over the cells that share the architecture; exact for
    every cell whose edges all reach the output (``count_parameters`` and the FLOP counter
    then agree); dead edges, which the exported network drops, are charged all the same."""
    image = example_image(net, image_size)
    was_training = net.training
    net.eval()
    try:
        per_gate = torch.zeros(len(EDGES), len(OPS), dtype=torch.float64)
        none = torch.zeros(len(EDGES), len(OPS), device=image.device, dtype=image.dtype)
        none[:, 0] = 1
        if metric == "params":
            base = float(net.count_parameters(none))
            for cell in net.cells():
                for edge in range(len(EDGES)):
                    for op, ops in ((CONV1, cell.conv1x1), (CONV3, cell.conv3x3)):
                        per_gate[edge, op] += sum(p.numel() for p in ops[edge].parameters())
        else:
            base = float(flops(net.forward_architecture, image, none))
            for cell, shape in zip(net.cells(), cell_inputs(net, image), strict=True):
                x = torch.zeros(shape, device=image.device, dtype=image.dtype)
                cell.apply_op(0, POOL, x)  # caches the pooling's divisor, counted only once
                for edge in range(len(EDGES)):
                    for op in (CONV1, CONV3, POOL):
                        per_gate[edge, op] += flops(cell.apply_op, edge, op, x)
    finally:
        net.train(was_training)
    return base / 1e6, (per_gate / 1e6).float()


def latency_table(net: NB201Net, image_size: int) -> tuple[float, torch.Tensor]:
    """``(base, per_gate)`` in ms per image (batch 1) on the net's device. Each op is timed once
    per cell (every edge of a cell sees the same shape), so a table costs a few hundred calls."""
    image = example_image(net, image_size)
    was_training = net.training
    net.eval()
    try:
        none = torch.zeros(len(EDGES), len(OPS), device=image.device)
        none[:, 0] = 1
        base = median_ms(lambda: net.forward_architecture(image, none), image.device)
        per_op = torch.zeros(len(OPS), dtype=torch.float64)
        for cell, shape in zip(net.cells(), cell_inputs(net, image), strict=True):
            x = torch.zeros(shape, device=image.device)
            for op in (CONV1, CONV3, POOL):
                per_op[op] += median_ms(partial(cell.apply_op, 0, op, x), image.device)
    finally:
        net.train(was_training)
    return base, per_op.expand(len(EDGES), len(OPS)).float()
