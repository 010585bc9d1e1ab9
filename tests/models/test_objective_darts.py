"""The darts space's SVI loss is the paper's Eq. 15 with pair gates, computed here by hand.

Eq. 15 = NLL + (l^2/2 * E[gated ||m||^2] + l^2/2 * ungated ||m||^2 + KL(q || p)) / N, where q
draws per node a pair of inputs (probability proportional to exp(s_a + s_b)) and an op per
kept input, p is uniform over pairs and ops, and the gated weights of an op are charged at its
relaxed weight keep x op, as nb201 charges its op weight (tests/models/test_objective.py).
"""

import itertools
import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import TraceMeanField_ELBO

from bayesnas.config import SearchConfig
from bayesnas.program import build_program
from bayesnas.spaces.darts.genotype import NODES, OPS
from bayesnas.spaces.darts.network import EDGES

N, L2 = 5000, 50.0


def _program():
    config = SearchConfig(
        space="darts", space_options={"channels": 4, "cells": 3}, prior_l2=L2, tau=0.5
    )
    program = build_program(config, num_classes=10, in_channels=3, num_data=N)
    program.elbo.double()
    with torch.no_grad():  # move the gates away from their initial values
        program.guide.gate_logits.add_(torch.randn_like(program.guide.gate_logits))
    return program


def _kl_by_hand(logits: torch.Tensor) -> torch.Tensor:
    """Per cell kind and node: KL of the pair distribution to uniform, plus every edge's op KL
    to uniform over the 7 ops weighted by the probability that the edge is kept."""
    kl = torch.zeros((), dtype=torch.float64)
    for kind in range(2):
        keep, ops = logits[kind, :, 0], logits[kind, :, 1:].softmax(-1)
        op_kl = math.log(7) + (ops * ops.log()).sum(-1)
        for node in range(NODES):
            into = [e for e, (to, _) in enumerate(EDGES) if to == node + 2]
            pairs = list(itertools.combinations(into, 2))
            q = torch.stack([keep[a] + keep[b] for a, b in pairs]).softmax(0)
            kl = kl + (q * (q * len(pairs)).log()).sum()
            for e in into:
                kept = sum(q[i] for i, pair in enumerate(pairs) if e in pair)
                kl = kl + kept * op_kl[e]
    return kl


def _eq15_darts(program, images, labels, gates):
    net = program.net
    nll = F.cross_entropy(net(images, gates), labels)
    gated_ids, gated = set(), 0.0
    for cell in net.cells:
        kind = int(cell.reduction)
        for e, ops in enumerate(cell.edges):
            for name, module in ops.items():
                convs = [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
                gated_ids |= {id(w) for w in convs}
                norm = sum((w.double().square().sum() for w in convs), torch.zeros(()))
                gated = gated + gates[:, kind, e, OPS.index(name)] * norm
    ungated = sum(
        m.weight.double().square().sum()
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and id(m.weight) not in gated_ids
    )
    prior = L2 / 2 * (gated.mean() + ungated)
    kl = _kl_by_hand(program.guide.gate_logits.double())
    return nll + (prior + kl) / N


def test_svi_loss_is_eq15_for_darts():
    torch.manual_seed(0)
    program = _program()
    images = torch.randn(6, 3, 16, 16, dtype=torch.float64)
    labels = torch.randint(0, 10, (6,))
    pyro.set_rng_seed(123)
    svi_loss = program.loss(images, labels)
    pyro.set_rng_seed(123)  # the same noise: the guide draws first inside the ELBO
    gates = program.guide(images, labels)
    assert gates.dtype == torch.float64 and gates.shape == (6, 2, len(EDGES), len(OPS))
    expected = _eq15_darts(program, images, labels, gates)
    assert svi_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert program.kl().item() == pytest.approx(
        _kl_by_hand(program.guide.gate_logits.double()).item(), rel=1e-6
    )
    svi_loss.backward()
    assert program.guide.gate_logits.grad.abs().sum() > 0


def test_device_elbo_equals_pyros_trace_mean_field_elbo_for_darts():
    torch.manual_seed(0)
    program = _program()
    images = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    labels = torch.randint(0, 10, (4,))
    results = []
    for elbo in (program.elbo.elbo, TraceMeanField_ELBO(max_plate_nesting=1)):
        pyro.set_rng_seed(123)
        with pyro.validation_enabled(True):
            loss = elbo.differentiable_loss(program.model, program.guide, images, labels)
        params = [program.guide.gate_logits, program.net.stem[0].weight]
        results.append((loss.detach(), *torch.autograd.grad(loss, params)))
    for ours, pyros in zip(*results, strict=True):
        torch.testing.assert_close(ours, pyros, rtol=1e-12, atol=1e-12)
