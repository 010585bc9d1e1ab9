"""The search's schedules: cosine learning rates, the warm-up with q frozen, tau, pruning.

Everything here is a pure function of the global step (or the epoch), so a resumed or
data-parallel run sets exactly what an uninterrupted single process sets at that step.
"""

from __future__ import annotations

import math

import torch

from bayesnas.config import SearchConfig
from bayesnas.program import Program

PRUNED_LOGIT = -1e4  # softmax gives such an op exactly 0 in float32 and bf16


def cosine(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to 0 over ``total`` steps (per step, as SGDR without restarts)."""
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / total))


def warmup_steps(config: SearchConfig, total_steps: int) -> int:
    """Steps in which q stays frozen while the weights train on draws from it."""
    return math.ceil(config.warmup * total_steps)


def apply_schedule(
    config: SearchConfig,
    program: Program,
    optimizer: torch.optim.Optimizer,
    step: int,
    total_steps: int,
) -> float:
    """Set the learning rates, the draw kind and the temperature for global ``step``.

    During the warm-up q is frozen, so the weights train on draws from it: exact ones (one per
    example, or with ``warmup_draws="batch"`` one path per batch as in single-path one-shot
    NAS, which costs one sub-network's step), unbiased for Eq. 15's weight gradient; or with
    ``warmup_draws="relaxed"`` the relaxed mixture, which trains every op together with every
    other one (docs/architecture.md, "What decides q"). Afterwards the gates are relaxed
    (Concrete) so that q gets gradients, and the gate learning rate and tau follow their
    schedules over the remaining steps. Returns tau.
    """
    c, guide = config, program.guide
    warmup = warmup_steps(c, total_steps)
    weights, *gates = optimizer.param_groups
    weights["lr"] = cosine(weights["base_lr"], step, total_steps)
    learning = step - warmup
    remaining = max(1, total_steps - warmup)
    for group in gates:
        group["lr"] = cosine(group["base_lr"], learning, remaining) if learning >= 0 else 0.0
    if c.sampler == "posterior":
        guide.relaxed = learning >= 0 or c.warmup_draws == "relaxed"
        guide.shared_exact = learning < 0 and c.warmup_draws == "batch"
    tau = c.tau + (c.tau_final - c.tau) * max(0, learning) / max(1, remaining - 1)
    guide.temperature = tau
    # 0 on every space but those whose record lists them (config refuses them elsewhere)
    progress = min(1.0, max(0, learning) / max(1, remaining - 1))
    program.net.aux_skip = c.aux_skip * (1 - progress) if learning >= 0 else 0.0
    program.net.skip_dropout = max(0.0, c.skip_dropout * (1 - step / max(1, total_steps - 1)))
    return tau


def prune(
    config: SearchConfig,
    program: Program,
    optimizer: torch.optim.Optimizer,
    epoch_end_step: int,
    total_steps: int,
) -> None:
    """Progressive pruning: after the warm-up, an op whose probability under q fell below
    ``prune_below`` at an epoch's end (global step ``epoch_end_step``) gets probability 0 from
    then on, so that it is never computed again (DrNAS prunes progressively too). Its logit is
    pinned at PRUNED_LOGIT, where softmax underflows to exactly 0, and its momentum is cleared:
    its gradient is then exactly 0, so it stays there and a resume restores it."""
    c, logits = config, program.guide.gate_logits
    if c.prune_below <= 0 or c.sampler != "posterior" or program.net.layout.kind != "categorical":
        return
    if epoch_end_step <= warmup_steps(c, total_steps):
        return
    with torch.no_grad():
        pruned = torch.softmax(logits, -1) < c.prune_below
        logits[pruned] = PRUNED_LOGIT
        momentum = optimizer.state.get(logits, {}).get("momentum_buffer")
        if momentum is not None:
            momentum[pruned] = 0.0
