"""Architecture costs that add up over gates: what the cost-aware prior charges each gate.

``gate_costs(net, metric, image_size)`` returns ``(base, per_gate)`` with ``per_gate`` shaped
``layout.shape``, so that ``cost(arch) = base + (arch * per_gate).sum()`` in M params or
MFLOPs (2 per multiply-add, as ``torch.utils.flop_counter`` counts). Because the cost is a sum
over gate elements, the prior p(arch) proportional to exp(-lambda * cost(arch)) factorises like
q does, and Eq. 15's KL to it stays exact and differentiable.

- nb201: one cost per (edge, op), summed over the cells that share the architecture; exact for
  every cell whose edges all reach the output (``count_parameters`` and the FLOP counter then
  agree with it); dead edges, which the exported network drops, are charged all the same.
- Bernoulli channel gates over ``net.convs`` (resnet): each gate charges the weight slice it
  switches (``conv.weight[:, k]``), i.e. the non-zero weights of the hybrid network phi; the
  physically smaller network also drops the producing conv's output channel, which is not
  credited, so this cost bounds the exported one from above.
- Any space may define ``net.gate_costs(metric, image_size)`` itself.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.errors import UserError
from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.nb201.cell import CONV1, CONV3, EDGES, OPS, POOL
from bayesnas.spaces.nb201.network import Cell, NB201Net

METRICS = ("flops", "params")
UNITS = {"flops": "MFLOPs", "params": "M params"}


def gate_costs(net: SuperNet, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
    """``(base, per_gate)`` costs of ``net`` in millions; UserError if the space has none."""
    if metric not in METRICS:
        raise UserError(f"unknown cost {metric!r}; choose one of: {', '.join(METRICS)}")
    own = getattr(net, "gate_costs", None)
    if callable(own):
        return own(metric, image_size)
    if isinstance(net, NB201Net):
        return _nb201_costs(net, metric, image_size)
    if net.layout.kind == "bernoulli" and hasattr(net, "convs"):
        return _conv_slice_costs(net, metric, image_size)
    raise UserError(
        f"space {net.space_name!r} reports no additive cost per gate, so it has no cost-aware "
        "prior: search without --cost"
    )


def arch_cost(base: float, per_gate: torch.Tensor, arch: torch.Tensor) -> float:
    """The additive cost of one hard architecture."""
    return base + float((arch.to(per_gate) * per_gate).sum())


def example_image(net: SuperNet, image_size: int) -> torch.Tensor:
    weight = next(net.parameters())
    channels = net.config.get("in_channels", 3)
    return torch.zeros(
        1, channels, image_size, image_size, device=weight.device, dtype=weight.dtype
    )


def _flops(fn, *args) -> int:
    """FLOPs of ``fn(*args)`` as torch's counter counts them."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops()


def cell_inputs(net: NB201Net, image: torch.Tensor) -> list[torch.Size]:
    """The input shape of every cell, in order (the cells pass their input through)."""
    shapes: list[torch.Size] = []

    def record(cell: Cell, x: torch.Tensor) -> torch.Tensor:
        shapes.append(x.shape)
        return x

    with torch.no_grad():
        net._run(image, record)
    return shapes


def _nb201_costs(net: NB201Net, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
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
            base = float(_flops(net.forward_architecture, image, none))
            for cell, shape in zip(net.cells(), cell_inputs(net, image), strict=True):
                x = torch.zeros(shape, device=image.device, dtype=image.dtype)
                cell.apply_op(0, POOL, x)  # caches the pooling's divisor, counted only once
                for edge in range(len(EDGES)):
                    for op in (CONV1, CONV3, POOL):
                        per_gate[edge, op] += _flops(cell.apply_op, edge, op, x)
    finally:
        net.train(was_training)
    return base / 1e6, (per_gate / 1e6).float()


def _conv_slice_costs(net: SuperNet, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
    convs: list[nn.Conv2d] = list(getattr(net, "convs"))  # noqa: B009 - not on SuperNet
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
        total_flops = _flops(net, image, ones)
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
