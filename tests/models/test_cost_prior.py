"""The cost-aware prior p(arch) ~ exp(-lambda * cost): its KL by hand, and off means unchanged."""

import math

import pyro
import pytest
import torch

from bayesnas.config import SearchConfig
from bayesnas.errors import UserError
from bayesnas.program import build_program
from bayesnas.spaces.costs import gate_costs

N, LAMBDA = 5000, 0.7


def _program(space, options, cost=None, weight=0.0):
    config = SearchConfig(
        space=space, space_options=options, cost=cost, cost_weight=weight, tau=0.5
    ).validated()
    torch.manual_seed(0)
    program = build_program(config, num_classes=10, in_channels=3, num_data=N)
    program.elbo.double()
    with torch.no_grad():
        logits = program.guide.gate_logits
        logits.copy_(torch.linspace(-2, 2, logits.numel()).view_as(logits))
    return program


def _kl_categorical_by_hand(q_logits, cost):
    """-H(q) + lambda E_q[cost] + log Z per edge, Z = sum over ops of exp(-lambda c)."""
    q = torch.softmax(q_logits.double(), -1)
    cost = cost.double()
    neg_entropy = (q * q.log()).sum(-1)
    expected = LAMBDA * (q * cost).sum(-1)
    log_z = torch.logsumexp(-LAMBDA * cost, -1)
    return (neg_entropy + expected + log_z).sum()


def _kl_bernoulli_by_hand(keep, cost):
    """Per channel: q log q + (1-q) log(1-q) + lambda q c + log(1 + exp(-lambda c))."""
    keep, cost = keep.double(), cost.double()
    neg_entropy = keep * keep.log() + (1 - keep) * (1 - keep).log()
    return (neg_entropy + LAMBDA * keep * cost + torch.log1p(torch.exp(-LAMBDA * cost))).sum()


def test_categorical_kl_is_the_hand_computation():
    program = _program("nb201", {"channels": 4, "cells": 1}, "flops", LAMBDA)
    _, cost = gate_costs(program.net, "flops", 32)
    expected = _kl_categorical_by_hand(program.guide.gate_logits.detach(), cost)
    assert program.kl().item() == pytest.approx(expected.item(), rel=1e-6)
    assert cost[:, 3].min() > cost[:, 2].max() > 0  # a 3x3 conv costs more than a 1x1


def test_bernoulli_kl_is_the_hand_computation():
    program = _program("resnet", {"width": 4, "blocks": 1}, "params", LAMBDA)
    _, cost = gate_costs(program.net, "params", 32)
    keep = torch.sigmoid(program.net.layout.expand_logits(program.guide.gate_logits.detach()))
    expected = _kl_bernoulli_by_hand(keep, cost)
    assert program.kl().item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_loss_carries_the_cost_kl_scaled_by_one_over_n():
    """Eq. 15 with the cost-aware prior: only the KL term changes, by (KL_cost - KL_flat) / N."""
    options = {"channels": 4, "cells": 1}
    flat, costly = _program("nb201", options), _program("nb201", options, "flops", LAMBDA)
    images = torch.randn(4, 3, 32, 32, dtype=torch.float64)
    labels = torch.randint(0, 10, (4,))
    losses = []
    for program in (flat, costly):
        pyro.set_rng_seed(1)
        losses.append(program.loss(images, labels))
    _, cost = gate_costs(costly.net, "flops", 32)
    logits = costly.guide.gate_logits.detach()
    kl_flat = _kl_categorical_by_hand(logits, torch.zeros_like(cost))
    q = torch.softmax(logits.double(), -1)
    assert kl_flat.item() == pytest.approx((math.log(5) + (q * q.log()).sum(-1)).sum().item())
    difference = (_kl_categorical_by_hand(logits, cost) - kl_flat) / N
    assert (losses[1] - losses[0]).item() == pytest.approx(difference.item(), rel=1e-5)
    losses[1].backward()
    assert costly.guide.gate_logits.grad.abs().sum() > 0


def test_off_is_the_paper_prior():
    for cost, weight in ((None, 0.0), ("flops", 0.0)):
        program = _program("nb201", {"channels": 4, "cells": 1}, cost, weight)
        assert program.model.prior_logits is None


def test_bad_cost_settings_are_one_line():
    with pytest.raises(UserError, match="--cost-weight"):
        SearchConfig(cost_weight=1.0).validated()
    with pytest.raises(UserError, match="--cost-weight"):
        SearchConfig(cost="flops", cost_weight=-1.0).validated()
    with pytest.raises(UserError, match="--cost must be"):
        SearchConfig(cost="latency", cost_weight=1.0).validated()
