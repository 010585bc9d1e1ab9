"""Ranking sampled sub-networks: evaluate each distinct architecture once on held-out data.

Each candidate is a hard architecture evaluated on the super-network's shared weights by
``forward_architecture``, which computes only what the architecture keeps. Nothing is copied or
rebuilt per candidate; the validation batches stay on the device across candidates.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.distributed import Dist
from bayesnas.selection.finetune import FineTune, fine_tuned
from bayesnas.spaces import SuperNet
from bayesnas.spaces.scoring import evaluate_architecture, evaluate_forward

# --bn of sample and ensemble: the super-network's BatchNorm statistics, or re-estimated per
# candidate on training batches (batchnorm_for)
BN_MODES = ("stats", "recalibrate")


@dataclass
class Candidate:
    """One distinct architecture with its scores and the draws that produced it."""

    arch: torch.Tensor
    log_q: float
    draws: list[int] = field(default_factory=list)  # indices of the draws that gave it
    metrics: dict[str, float] = field(default_factory=dict)


def distinct(net: SuperNet, archs: torch.Tensor, log_q: torch.Tensor) -> list[Candidate]:
    """Group identical draws (after canonicalisation), keeping the order of first appearance."""
    seen: dict[bytes, Candidate] = {}
    for index, arch in enumerate(archs):
        arch = net.canonical(arch)
        key = arch.to(torch.bool).numpy().tobytes()
        if key not in seen:
            seen[key] = Candidate(arch, float(log_q[index]))
        seen[key].draws.append(index)
    return list(seen.values())


def flops_per_image(net: SuperNet, arch: torch.Tensor, example: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add, as torch counts them) of one image through ``arch``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.forward_architecture(example[:1], arch)
    return counter.get_total_flops()


@contextlib.contextmanager
def recalibrated_batchnorm(
    net: SuperNet, arch: torch.Tensor, batches: Callable[[], Iterator], steps: int
) -> Iterator[None]:
    """Inside the block, BatchNorm statistics are re-estimated for ``arch`` on training batches
    (the same batches and augmentation every time, so ranking and export agree); the
    super-network's own statistics are restored afterwards."""
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [(m.momentum, {k: v.clone() for k, v in m.state_dict().items()}) for m in norms]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration batches
        net.train()
        with torch.no_grad(), torch.random.fork_rng(devices=[arch.device] if arch.is_cuda else []):
            torch.manual_seed(0)
            for images, _ in islice(batches(), steps):
                net.forward_architecture(images, arch)
        yield
    finally:
        for m, (momentum, state) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.load_state_dict(state)


def batchnorm_for(
    net: SuperNet, arch: torch.Tensor, bn: str, batches: Callable[[], Iterator] | None, steps: int
) -> contextlib.AbstractContextManager:
    """The BatchNorm statistics a candidate is scored (and exported) with."""
    if bn == "recalibrate":
        if batches is None:
            raise ValueError("--bn recalibrate needs training batches")
        return recalibrated_batchnorm(net, arch, batches, steps)
    return contextlib.nullcontext()


def evaluate_candidates(
    net: SuperNet,
    candidates: list[Candidate],
    val_batches: Callable[[], Iterator],
    *,
    bn: str = "stats",
    train_batches: Callable[[], Iterator] | None = None,
    bn_steps: int = 20,
    fine_tune: FineTune | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Fill ``metrics`` of every candidate: accuracy, NLL, params, FLOPs on the held-out split.

    With ``fine_tune``, val_acc and val_nll are those of the candidate's sub-network after the
    fine-tuning steps, and inherited_val_acc that of its inherited weights. Scored in float32
    on every device, so that an exported network run plainly (no autocast) reproduces the
    ranked accuracy."""
    example = next(iter(val_batches()))[0]
    device = example.device
    for candidate in candidates:
        arch = candidate.arch.to(device)
        context = batchnorm_for(net, arch, bn, train_batches, bn_steps)
        with context:
            scores = evaluate_architecture(net, arch, val_batches())
        tuned = {}
        if fine_tune is not None:
            if train_batches is None:
                raise ValueError("fine-tuning needs training batches")
            inherited = scores
            subnet = fine_tuned(net, arch, train_batches, fine_tune)
            scores = evaluate_forward(subnet, subnet, val_batches())
            tuned = {"inherited_val_acc": inherited["accuracy"], "fine_tune_steps": fine_tune.steps}
        candidate.metrics = {
            "val_acc": scores["accuracy"],
            "val_nll": scores["nll"],
            "val_images": scores["images"],
            **tuned,
            "params_m": net.count_parameters(candidate.arch) / 1e6,
            "mflops": flops_per_image(net, arch, example) / 1e6,
        }
        if progress is not None:
            progress(1)


def best_of_k(first_draws: Iterable[tuple[int, float]], n: int) -> list[float]:
    """Best validation accuracy among the first k of ``n`` draws, k = 1..n (the paper's Table 6),
    from each candidate's (first draw index, accuracy): a candidate counts from its first draw."""
    first = [-math.inf] * n
    for index, accuracy in first_draws:
        first[index] = max(first[index], accuracy)
    return list(itertools.accumulate(first, max))


def evaluate_shared(
    dist: Dist,
    net: SuperNet,
    candidates: list[Candidate],
    val_batches: Callable[[], Iterator],
    **options: Any,
) -> None:
    """``evaluate_candidates`` with the candidates split over the ranks of a torchrun job (rank
    r scores every world-th one from r) and the scores gathered, so that every rank ends with
    every candidate's metrics, as one process scoring them all would have them."""
    evaluate_candidates(net, candidates[dist.rank :: dist.world], val_batches, **options)
    if not dist.active:
        return
    scored = dist.all_gather([c.metrics for c in candidates[dist.rank :: dist.world]])
    for rank, metrics in enumerate(scored):
        for candidate, values in zip(candidates[rank :: dist.world], metrics, strict=True):
            candidate.metrics = values
