"""A latency estimate per architecture: each op timed once on the current device, then summed.

Only an estimate: the sum of per-op times at batch 1 ignores what a real run overlaps, fuses
or caches, and on a shared CPU it is as noisy as the machine. Spaces whose cost adds up per
op (nb201: one op per edge, the same in every cell) allow it; others return None.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

import torch

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.costs import cell_inputs, example_image
from bayesnas.spaces.nb201.cell import CONV1, CONV3, EDGES, OPS, POOL
from bayesnas.spaces.nb201.network import NB201Net

REPEATS = 10  # timed calls per op, after two untimed ones; the median is kept


def _median_ms(fn: Callable[[], object], device: torch.device) -> float:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.no_grad():
        for repeat in range(REPEATS + 2):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            if repeat >= 2:
                times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def latency_table(net: SuperNet, image_size: int) -> tuple[float, torch.Tensor] | None:
    """``(base, per_gate)`` in ms per image (batch 1) on the net's device; None if the space
    has no per-op decomposition. Each op is timed once per cell (every edge of a cell sees the
    same shape), so a table costs a few hundred small calls."""
    if not isinstance(net, NB201Net):
        return None
    image = example_image(net, image_size)
    was_training = net.training
    net.eval()
    try:
        none = torch.zeros(len(EDGES), len(OPS), device=image.device)
        none[:, 0] = 1
        base = _median_ms(lambda: net.forward_architecture(image, none), image.device)
        per_op = torch.zeros(len(OPS), dtype=torch.float64)
        for cell, shape in zip(net.cells(), cell_inputs(net, image), strict=True):
            x = torch.zeros(shape, device=image.device)
            for op in (CONV1, CONV3, POOL):
                per_op[op] += _median_ms(partial(cell.apply_op, 0, op, x), image.device)
    finally:
        net.train(was_training)
    return base, per_op.expand(len(EDGES), len(OPS)).float()
