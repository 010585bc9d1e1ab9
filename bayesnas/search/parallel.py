"""What keeps the ranks of a data-parallel search one run: averaged gradients, shared step
statistics, averaged BatchNorm buffers, and a check that q is the same on every rank.

Each rank computes Eq. 15 on its shard (the data plate's subsample), so its loss is a mean over
its examples plus the terms outside the plate; with equal shards the mean of the ranks' losses
is the loss of the global batch, and the mean of their gradients is its gradient. The update
is therefore the single-process update on the global batch, and the learning rates apply
unchanged. The sums go over the ranks in one all-reduce per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bayesnas.distributed import Dist


def average_gradients(
    dist: Dist, params: Sequence[torch.Tensor], stats: torch.Tensor
) -> torch.Tensor:
    """Replace every gradient by its mean over ranks, and return ``stats`` summed over ranks,
    in one all-reduce. A parameter without a gradient on some ranks counts as zero there; one
    without a gradient on every rank keeps none (SGD then leaves it alone, as one process
    would)."""
    present = dist.any(*(p.grad is not None for p in params))
    parts = [
        p.grad.reshape(-1).float() if p.grad is not None else p.new_zeros(p.numel())
        for p, has in zip(params, present, strict=True)
        if has
    ]
    flat = dist.sum_(torch.cat([*parts, stats.float()]))
    offset = 0
    for p, has in zip(params, present, strict=True):
        if not has:
            continue
        mean = flat[offset : offset + p.numel()].view_as(p).div_(dist.world)
        p.grad = mean.to(p.dtype)
        offset += p.numel()
    return flat[offset:]


def batchnorm_buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    """The BatchNorm running statistics of ``net`` (CPU copies), by state_dict name."""
    return {
        name: buffer.detach().cpu().clone()
        for name, buffer in net.named_buffers()
        if name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def load_batchnorm_buffers(net: nn.Module, buffers: dict[str, torch.Tensor]) -> None:
    own = dict(net.named_buffers())
    with torch.no_grad():
        for name, value in buffers.items():
            own[name].copy_(value)


def average_batchnorm(dist: Dist, net: nn.Module) -> None:
    """Running means and variances averaged over ranks: without --sync-bn each rank estimates
    them from its own shards; the average uses every shard, and every rank then holds it."""
    if not dist.active:
        return
    for name, buffer in net.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            dist.sum_(buffer.data).div_(dist.world)


def check_one_q(dist: Dist, gate_logits: torch.Tensor) -> None:
    """q must be bit for bit the same on every rank (averaged gradients, the same updates);
    a difference is a bug, stopped before it is saved."""
    if not dist.active:
        return
    logits = dist.all_gather(gate_logits.detach().cpu())
    if not all(torch.equal(logits[0], other) for other in logits[1:]):
        raise RuntimeError("the ranks' gate logits differ: the data-parallel search diverged")
