"""Architecture costs that add up over gates: what the cost-aware prior charges each gate.

``gate_costs(net, metric, image_size)`` returns ``(base, per_gate)`` with ``per_gate`` shaped
``layout.shape``, so that ``cost(arch) = base + (arch * per_gate).sum()`` in M params or
MFLOPs (2 per multiply-add, as ``torch.utils.flop_counter`` counts). Because the cost is a sum
over gate elements, the prior p(arch) proportional to exp(-lambda * cost(arch)) factorises like
q does, and Eq. 15's KL to it stays exact and differentiable.

Each space computes its own (the ``SuperNet.gate_costs`` hook), e.g. nb201 one cost per
(edge, op) (``spaces/nb201/costs.py``); channel-gated spaces (resnet, resnet50) use
``conv_slice_costs`` here: each gate charges the weight slice it switches (``conv.weight[:,
k]``), i.e. the non-zero weights of the hybrid network phi; the physically smaller network
also drops the producing conv's output channel, which is not credited, so this cost bounds the
exported one from above.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.errors import UserError
from bayesnas.spaces.base import SuperNet

METRICS = ("flops", "params")
UNITS = {"flops": "MFLOPs", "params": "M params"}


def gate_costs(net: SuperNet, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
    """``(base, per_gate)`` costs of ``net`` in millions; UserError if the space has none."""
    if metric not in METRICS:
        raise UserError(f"unknown cost {metric!r}; choose one of: {', '.join(METRICS)}")
    return net.gate_costs(metric, image_size)  # the space's hook (the default: UserError)


def arch_cost(base: float, per_gate: torch.Tensor, arch: torch.Tensor) -> float:
    """The additive cost of one hard architecture."""
    return base + float((arch.to(per_gate) * per_gate).sum())


def example_image(net: SuperNet, image_size: int) -> torch.Tensor:
    """One zero image of the net's input shape, on its device and in its dtype."""
    weight = next(net.parameters())
    channels = net.config.get("in_channels", 3)
    return torch.zeros(
        1, channels, image_size, image_size, device=weight.device, dtype=weight.dtype
    )


def flops(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` as torch's counter counts them."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def conv_slice_costs(
    net: SuperNet, convs: list[nn.Conv2d], metric: str, image_size: int
) -> tuple[float, torch.Tensor]:
    """Costs of Bernoulli gates over the input channels of ``convs``, in order: each gate
    charges the weight slice it switches; ``base`` is everything else."""
    image = example_image(net, image_size)
    outputs: dict[int, torch.Size] = {}
    hooks = [
        conv.register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.shape))
        for n, conv in enumerate(convs)
    ]
    ones = torch.ones(1, *net.layout.shape, device=image.device, dtype=image.dtype)
    was_training = net.training
    net.eval()
    try:
        total_flops = flops(net, image, ones)
    finally:
        net.train(was_training)
        for hook in hooks:
            hook.remove()
    slices = []
    for n, conv in enumerate(convs):
        kh, kw = conv.kernel_size
        per_channel = conv.out_channels * kh * kw
        if metric == "flops":
            per_channel *= 2 * outputs[n][-2] * outputs[n][-1]
        slices.append(torch.full((conv.in_channels,), float(per_channel), dtype=torch.float64))
    per_gate = torch.cat(slices)
    total = total_flops if metric == "flops" else sum(p.numel() for p in net.parameters())
    base = float(total) - float(per_gate.sum())
    return base / 1e6, (per_gate / 1e6).float()


def pareto_front(accuracy: list[float], cost: list[float]) -> list[bool]:
    """Whether each point is on the front of accuracy (higher) against cost (lower): no other
    point is at least as accurate and at most as costly while strictly better in one."""
    points = list(zip(accuracy, cost, strict=True))
    return [
        not any(
            a2 >= a and c2 <= c and (a2 > a or c2 < c)
            for j, (a2, c2) in enumerate(points)
            if j != i
        )
        for i, (a, c) in enumerate(points)
    ]
