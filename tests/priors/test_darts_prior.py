"""The zero-cost prior on DARTS genotypes (pair gates): op and input evidence, the gate site's
prior in the Pyro trace, and a search that starts q from it."""

import pytest
import torch
from pyro import poutine

from bayesnas.config import SearchConfig, build_config
from bayesnas.gates.pairs import PairGate
from bayesnas.models import ARCH_SITE
from bayesnas.priors.proxies import naswot
from bayesnas.priors.removal import removal_evidence
from bayesnas.program import build_program
from bayesnas.spaces import create_space
from bayesnas.spaces.darts.network import STRUCTURE

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _darts_evidence(seed: int) -> torch.Tensor:
    def make_net():
        return create_space("darts", channels=4, cells=3, num_classes=10, in_channels=1)

    torch.manual_seed(5)
    batches = [torch.randn(16, 1, 16, 16)]
    return removal_evidence(make_net, batches, naswot, repeats=1, seed=seed, show_progress=False)


@pytest.fixture(scope="module")
def evidence() -> torch.Tensor:
    return _darts_evidence(0)


def test_darts_evidence_scores_ops_and_inputs(evidence):
    assert evidence.shape == (2, STRUCTURE.edges, 8)
    assert torch.equal(evidence, _darts_evidence(0))
    ops = evidence[..., 1:]
    # every edge's op evidence is z-scored over the 7 real ops, and differs between ops
    assert torch.allclose(ops.mean(-1), torch.zeros(2, STRUCTURE.edges), atol=1e-5)
    assert (ops.std(-1) > 0.5).all()
    # column 0 (keep logits) is z-scored over each node's incoming edges
    for node in STRUCTURE.node_slices():
        keep = evidence[:, node, 0]
        assert torch.allclose(keep.mean(-1), torch.zeros(2), atol=1e-5)
        assert (keep.std(-1) > 0.5).all()


def test_darts_gate_site_prior_is_the_pair_gate_of_the_stored_logits(evidence):
    config = SearchConfig(
        space="darts", space_options={"channels": 4, "cells": 3}, arch_prior="zero-cost"
    ).validated()
    torch.manual_seed(0)
    program = build_program(config, 10, 1, num_data=1000, evidence_logits=evidence)
    images, labels = torch.randn(2, 1, 16, 16), torch.randint(0, 10, (2,))
    guide_trace = poutine.trace(program.guide).get_trace(images, labels)
    trace = poutine.trace(poutine.replay(program.model, trace=guide_trace)).get_trace(
        images, labels
    )
    value = trace.nodes[ARCH_SITE]["value"]
    expected = PairGate(evidence.expand(2, *evidence.shape), STRUCTURE).log_prob(value)
    flat = PairGate(torch.zeros(2, *evidence.shape), STRUCTURE).log_prob(value)
    actual = trace.nodes[ARCH_SITE]["fn"].log_prob(value)
    assert torch.allclose(actual, expected) and not torch.allclose(actual, flat)
    assert torch.equal(program.guide.gate_logits.detach(), evidence)  # q starts at the prior


def test_presets_keep_the_flat_prior_on_darts_unless_asked():
    assert build_config("quick", space="darts").arch_prior == "uniform"
    assert build_config("quick", space="nb201").arch_prior == "zero-cost"
    asked = build_config("quick", space="darts", arch_prior="zero-cost")
    assert asked.arch_prior == "zero-cost"
