"""Cost budgets on sampling: ``sample --max-params M --max-flops F``.

Draws whose exact sub-network (params counted, FLOPs measured on one image) exceeds a budget
are rejected and redrawn, in rounds of n under seeds derived from the user's, for at most
``MAX_ROUNDS`` rounds; none fitting is one line (exit 2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from bayesnas.errors import UserError
from bayesnas.rundir import note
from bayesnas.selection.posterior import Posterior, draw_architectures
from bayesnas.selection.rank import flops_per_image

MAX_ROUNDS = 20  # a budget gets at most 20 x n draws
_SEED_STEP = 7919  # round r draws under seed + r * this (mod 2**32)


@dataclass(frozen=True)
class Budget:
    """Upper bounds in M params and MFLOPs per image (None: no bound)."""

    max_params_m: float | None = None
    max_mflops: float | None = None

    @property
    def active(self) -> bool:
        return self.max_params_m is not None or self.max_mflops is not None

    def describe(self) -> str:
        parts = []
        if self.max_params_m is not None:
            parts.append(f"params <= {self.max_params_m:g} M")
        if self.max_mflops is not None:
            parts.append(f"FLOPs <= {self.max_mflops:g} M")
        return " and ".join(parts)


@dataclass
class BudgetDraws:
    """The draws that fit, with how many were drawn and rejected to get them."""

    archs: torch.Tensor
    log_q: torch.Tensor
    drawn: int
    rejected: int


def cost_of(posterior: Posterior, example: torch.Tensor) -> Callable[[torch.Tensor], tuple]:
    """(M params, MFLOPs) of an architecture's exact sub-network, cached per architecture."""
    net = posterior.program.net
    cache: dict[bytes, tuple[float, float]] = {}

    def cost(arch: torch.Tensor) -> tuple[float, float]:
        arch = net.canonical(arch)
        key = arch.to(torch.bool).numpy().tobytes()
        if key not in cache:
            flops = flops_per_image(net, arch.to(example.device), example)
            cache[key] = (net.count_parameters(arch) / 1e6, flops / 1e6)
        return cache[key]

    return cost


def draw_within_budget(
    posterior: Posterior,
    n: int,
    sampler: str,
    seed: int,
    drop_rate: float | None,
    budget: Budget,
    example: torch.Tensor,
) -> BudgetDraws:
    """Up to ``n`` draws within ``budget``; UserError if none fits in MAX_ROUNDS rounds."""
    cost = cost_of(posterior, example)
    kept_archs: list[torch.Tensor] = []
    kept_log_q: list[torch.Tensor] = []
    drawn = 0
    smallest = (float("inf"), float("inf"))
    for round_ in range(MAX_ROUNDS):
        archs, log_q = draw_architectures(
            posterior, n, sampler, (seed + round_ * _SEED_STEP) % 2**32, drop_rate
        )
        for arch, lq in zip(archs, log_q, strict=True):
            if len(kept_archs) == n:
                break
            drawn += 1
            params, flops = cost(arch)
            smallest = (min(smallest[0], params), min(smallest[1], flops))
            if (budget.max_params_m is None or params <= budget.max_params_m) and (
                budget.max_mflops is None or flops <= budget.max_mflops
            ):
                kept_archs.append(arch)
                kept_log_q.append(lq)
        if len(kept_archs) == n:
            break
    if not kept_archs:
        raise UserError(
            f"none of {drawn} draws fits the budget ({budget.describe()}); the smallest drawn "
            f"had {smallest[0]:.4f} M params and {smallest[1]:.2f} MFLOPs: raise the budget"
        )
    if len(kept_archs) < n:
        note(f"only {len(kept_archs)} of {drawn} draws fit the budget ({budget.describe()})")
    return BudgetDraws(
        torch.stack(kept_archs), torch.stack(kept_log_q), drawn, drawn - len(kept_archs)
    )
