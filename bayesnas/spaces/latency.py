"""A latency estimate per architecture: each op timed once on the current device, then summed.

Only an estimate: the sum of per-op times at batch 1 ignores what a real run overlaps, fuses
or caches, and on a shared CPU it is as noisy as the machine. Spaces whose cost adds up per
op (nb201: one op per edge, the same in every cell) time their ops with ``median_ms``; others
return None.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from bayesnas.spaces.base import SuperNet

REPEATS = 10  # timed calls per op, after two untimed ones; the median is kept


def latency_table(net: SuperNet, image_size: int) -> tuple[float, torch.Tensor] | None:
    """``(base, per_gate)`` in ms per image (batch 1) on the net's device; None if the space
    has no per-gate decomposition (its ``latency_table`` hook)."""
    return net.latency_table(image_size)


def median_ms(fn: Callable[[], object], device: torch.device) -> float:
    """Median milliseconds of ``fn()`` over REPEATS timed calls (after two untimed ones)."""
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
