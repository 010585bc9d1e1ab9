"""BatchNorm over the global batch of a data-parallel search (``--sync-bn``), on CPU and GPU.

Each rank normalises its shard with the mean and variance of the whole global batch, so that
the ranks compute together what one process computes on that batch (to float tolerance), and
the gradients flow through the shared statistics as they would there. torch's own
``SyncBatchNorm`` refuses CPU tensors, so it cannot run (or be tested) under Gloo; this one is
a ``BatchNorm2d`` subclass with the same parameters and buffers (checkpoints and exports are
unchanged, and code that looks for ``BatchNorm2d`` still finds it). Outside training, or in a
single process, it is plain BatchNorm.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all ranks."""

    group = None  # the process group (None: the default one)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size(self.group) > 1):
            return super().forward(x)
        mean, var, count = _global_moments(x, self.group)
        if self.track_running_stats and self.running_mean is not None:
            self._update_running(mean.detach(), var.detach(), count.detach())
        shape = (1, -1, 1, 1)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        out = (x.float() - mean.view(shape)) * scale.view(shape)
        if self.bias is not None:
            out = out + self.bias.view(shape)
        return out.to(x.dtype)

    @torch.no_grad()
    def _update_running(self, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
        """Running statistics as BatchNorm keeps them: the unbiased variance, momentum or mean."""
        running_mean, running_var, tracked = (
            self.running_mean,
            self.running_var,
            self.num_batches_tracked,
        )
        assert running_mean is not None and running_var is not None and tracked is not None
        tracked.add_(1)
        factor = self.momentum  # None: a cumulative average, as BatchNorm
        weight = factor if factor is not None else 1.0 / float(tracked)
        unbiased = var * count / (count - 1).clamp_min(1)
        running_mean.lerp_(mean.to(running_mean.dtype), weight)
        running_var.lerp_(unbiased.to(running_var.dtype), weight)


def _global_moments(x: torch.Tensor, group) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, biased variance and count per channel over every rank's ``x`` (differentiable):
    each rank's exact two-pass moments, combined as Chan et al. combine partial variances."""
    channels = x.shape[1]
    xf = x.float()
    if xf.numel() == 0:  # a rank with no rows of this op still takes part in the exchange
        local = xf.new_zeros(3, channels)
    else:
        var, mean = torch.var_mean(xf, dim=(0, 2, 3), unbiased=False)
        n = xf.new_full((channels,), xf.numel() / channels)
        local = torch.stack((n, mean, var * n))  # count, mean, sum of squared deviations
    parts = torch.stack(dist_fn.all_gather(local, group=group or dist.group.WORLD))
    counts, means, squares = parts.unbind(1)
    count = counts.sum(0)
    mean = (counts * means).sum(0) / count
    square = (squares + counts * (means - mean).square()).sum(0)
    return mean, square / count, count


def convert(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm2d replaced by a GlobalBatchNorm2d holding the same
    parameters and buffers (in place where possible; returns the root)."""
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm2d):
        synced = GlobalBatchNorm2d(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            device=module.weight.device if module.affine else None,
        )
        synced.load_state_dict(module.state_dict())
        synced.train(module.training)
        return synced
    for name, child in module.named_children():
        setattr(module, name, convert(child))
    return module
