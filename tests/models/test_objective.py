"""Pyro's ELBO for the model and guide equals the paper's Eq. 15 computed by hand."""

import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import TraceMeanField_ELBO

from bayesnas.config import SearchConfig
from bayesnas.program import build_program

N, L2 = 5000, 50.0


def _program(space, options):
    config = SearchConfig(space=space, space_options=options, prior_l2=L2, tau=0.5)
    program = build_program(config, num_classes=10, in_channels=3, num_data=N)
    program.elbo.double()
    with torch.no_grad():  # move the gates away from their initial values
        program.guide.gate_logits.add_(torch.randn_like(program.guide.gate_logits))
    return program


def _ungated_sq_norm(net, gated):
    return sum(
        m.weight.double().square().sum()
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and id(m.weight) not in gated
    )


def _eq15_nb201(program, images, labels, gates):
    net, logits = program.net, program.guide.gate_logits.double()
    nll = F.cross_entropy(net(images, gates), labels)
    q = torch.softmax(logits, -1)
    kl = (math.log(5) + (q * q.log()).sum(-1)).sum()  # log 5 - H(q) per edge
    gated = 0.0
    for cell in net.cells():
        for edge in range(6):
            gated = gated + gates[:, edge, 2] * cell.conv1x1[edge].conv.weight.square().sum()
            gated = gated + gates[:, edge, 3] * cell.conv3x3[edge].conv.weight.square().sum()
    ids = {id(p) for c in net.cells() for m in (*c.conv1x1, *c.conv3x3) for p in m.parameters()}
    prior = L2 / 2 * (gated.mean() + _ungated_sq_norm(net, ids))
    return nll + (prior + kl) / N


def _eq15_resnet(program, images, labels, gates):
    net, keep_logits = program.net, program.guide.gate_logits.double()
    nll = F.cross_entropy(net(images, gates), labels)
    p = torch.sigmoid(-keep_logits)  # drop probabilities
    sizes = torch.tensor([c.in_channels for c in net.convs], dtype=torch.float64)
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    kl = (sizes * (math.log(2) - entropy)).sum()  # K_g (log 2 - H(p_g))
    gated, start = 0.0, 0
    for conv in net.convs:
        k = conv.in_channels
        per_channel = conv.weight.square().sum((0, 2, 3))
        gated = gated + gates[:, start : start + k] @ per_channel
        start += k
    prior = L2 / 2 * (gated.mean() + _ungated_sq_norm(net, {id(c.weight) for c in net.convs}))
    return nll + (prior + kl) / N


@pytest.mark.parametrize(
    "space,options,by_hand",
    [
        ("nb201", {"channels": 4, "cells": 1}, _eq15_nb201),
        ("resnet", {"width": 4, "blocks": 1}, _eq15_resnet),
    ],
)
def test_svi_loss_is_eq15(space, options, by_hand):
    torch.manual_seed(0)
    program = _program(space, options)
    images = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    labels = torch.randint(0, 10, (6,))
    pyro.set_rng_seed(123)
    svi_loss = program.loss(images, labels)
    pyro.set_rng_seed(123)  # the same noise: the guide draws first inside the ELBO
    gates = program.guide(images, labels)
    assert gates.dtype == torch.float64 and gates.shape[0] == 6
    expected = by_hand(program, images, labels, gates)
    assert svi_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    svi_loss.backward()
    assert program.guide.gate_logits.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "space,options", [("nb201", {"channels": 4, "cells": 1}), ("resnet", {"width": 4, "blocks": 1})]
)
def test_device_elbo_equals_pyros_trace_mean_field_elbo(space, options):
    """The on-device ELBO gives Pyro's TraceMeanField_ELBO loss and gradients, validation on."""
    torch.manual_seed(0)
    program = _program(space, options)
    images = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    labels = torch.randint(0, 10, (6,))
    results = []
    for elbo in (program.elbo.elbo, TraceMeanField_ELBO(max_plate_nesting=1)):
        pyro.set_rng_seed(123)
        with pyro.validation_enabled(True):
            loss = elbo.differentiable_loss(program.model, program.guide, images, labels)
        params = [program.guide.gate_logits, program.net.stem[0].weight]
        results.append((loss.detach(), *torch.autograd.grad(loss, params)))
    for ours, pyros in zip(*results, strict=True):
        torch.testing.assert_close(ours, pyros, rtol=1e-12, atol=1e-12)


def test_kl_scale_counts_gates_once_per_data_set():
    """Doubling the batch leaves the KL term unchanged: it is not multiplied by the batch."""
    torch.manual_seed(0)
    program = _program("nb201", {"channels": 4, "cells": 1})
    net = program.net
    for module in net.modules():  # zero weights: the loss is then log 10 + KL/N + 0 prior
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear):
            torch.nn.init.zeros_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
    q = torch.softmax(program.guide.gate_logits.double(), -1)
    kl = (math.log(5) + (q * q.log()).sum(-1)).sum()
    for batch in (4, 8):
        images = torch.randn(batch, 3, 16, 16, dtype=torch.float64)
        loss = program.loss(images, torch.zeros(batch, dtype=torch.long))
        assert loss.item() == pytest.approx(math.log(10) + kl.item() / N, rel=1e-6)
