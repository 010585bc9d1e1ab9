"""Super-networks keep bf16 activations bf16 with float32 images and gates, as under CUDA autocast.

On CUDA, autocast leaves convolution and BatchNorm outputs in bf16 while images and gates stay
float32; mixing the two once broke the nb201 mixture (index_add of float into bf16). A network
whose stem hands bf16 to bf16 layers reproduces that dtype flow on the CPU, without a GPU.
"""

import pytest
import torch
from torch import nn

from bayesnas.spaces import create_space


class ToBFloat16(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.bfloat16)


TINY = [("nb201", {"channels": 4, "cells": 1}), ("resnet", {"width": 4, "blocks": 1})]


@pytest.mark.parametrize("space, options", TINY)
@pytest.mark.parametrize("draw", ["relaxed", "partial", "exact"])
def test_bf16_activations_with_float32_gates(space, options, draw):
    torch.manual_seed(0)
    net = create_space(space, **options)
    stem = net.stem
    net.to(torch.bfloat16)
    net.stem = nn.Sequential(stem.float(), ToBFloat16())
    gates = net.layout.distribution(net.init_gate_logits(0.1), 6, 0.5, hard=draw == "exact")
    gates = gates.rsample()
    if draw == "partial":  # example 0 drops everything: every op runs on a subset of rows
        gates[0] = 0
    out = net(torch.randn(6, 3, 32, 32), gates.requires_grad_())
    assert out.dtype == torch.bfloat16 and out.shape == (6, 10)
    out.float().sum().backward()
    assert gates.grad is not None and torch.isfinite(gates.grad).all()
