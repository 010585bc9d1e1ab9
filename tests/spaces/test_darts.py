"""The DARTS cell space: its networks, its pair gates (valid genotypes, exact log q) and exports."""

import itertools
import json
import math

import pytest
import torch
from genotypes import DARTS_V2
from helpers import count

from bayesnas.gates.pairs import PairGate
from bayesnas.spaces import create_space
from bayesnas.spaces.darts.genotype import NODES, parse_genotype
from bayesnas.spaces.darts.network import EDGES, STRUCTURE, gates_of
from bayesnas.spaces.darts.subnet import DartsNetwork
from bayesnas.spaces.subnet import build_subnet, subnet_from_spec, subnet_spec

pytestmark = pytest.mark.usefixtures("one_thread_module")


def small(cells: int = 3, channels: int = 4, seed: int = 0):
    """A small search network with random BN affines and statistics, in eval mode."""
    torch.manual_seed(seed)
    net = create_space("darts", channels=channels, cells=cells)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.normal_(module.bias, 0.0, 0.3)
    net.train()
    with torch.no_grad():
        gates = net.layout.distribution(torch.randn(net.layout.shape), 4, 1.0, hard=False)
        net(torch.randn(4, 3, 8, 8), gates.sample())
    return net.eval()


def exact_draws(logits: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return PairGate(logits.expand(n, *logits.shape), STRUCTURE, hard=True).sample()


def test_darts_v2_evaluation_network_has_darts_parameter_count():
    """DARTS reports 3.3 M for DARTS_V2 at 20 cells, C=36 on CIFAR-10, auxiliary head aside."""
    net = DartsNetwork(36, 20, 10, 3, DARTS_V2, auxiliary=True)
    assert count(net) - count(net.auxiliary) == 3_349_342
    net.train()
    logits, aux = net.forward_with_auxiliary(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    assert count(net.without_auxiliary()) == 3_349_342


def test_search_network_builds_small_and_takes_relaxed_and_hard_gates():
    net = small(cells=5)
    assert sum(c.reduction for c in net.cells) == 2 and net.cells[1].reduction
    images = torch.randn(3, 3, 16, 16)
    relaxed = net.layout.distribution(torch.randn(net.layout.shape), 3, 0.5, hard=False).sample()
    assert net.train()(images, relaxed).shape == (3, 10)
    arch = exact_draws(torch.zeros(net.layout.shape), 1)[0]
    assert net.eval().forward_architecture(images, arch).shape == (3, 10)


def test_every_exact_draw_is_a_genotype_that_parses_back():
    net = small()
    logits = 2 * torch.randn(net.layout.shape)
    draws = exact_draws(logits, 1000)
    assert draws.shape == (1000, 2, len(EDGES), 8)
    for arch in draws:
        ops = arch.argmax(-1)
        for node in range(NODES):  # exactly two distinct inputs, each with a real op
            into = [e for e, (to, _) in enumerate(EDGES) if to == node + 2]
            assert (ops[:, into] != 0).sum(-1).tolist() == [2, 2]
        text = net.describe(arch)
        assert torch.equal(net.decode(str(parse_genotype(text))), arch)
    assert len({net.encode(a) for a in draws}) > 900


def _log_q_by_hand(logits: torch.Tensor, arch: torch.Tensor) -> float:
    total = 0.0
    for kind in range(2):
        keep, ops = logits[kind, :, 0], logits[kind, :, 1:].log_softmax(-1)
        kept = [e for e in range(len(EDGES)) if arch[kind, e, 0] == 0]
        for node in range(NODES):
            into = [e for e, (to, _) in enumerate(EDGES) if to == node + 2]
            scores = {p: float(keep[list(p)].sum()) for p in itertools.combinations(into, 2)}
            mine = tuple(e for e in into if e in kept)
            total += scores[mine] - math.log(sum(math.exp(s) for s in scores.values()))
        total += sum(float(ops[e, int(arch[kind, e, 1:].argmax())]) for e in kept)
    return total


def test_log_q_is_exact_and_pairs_follow_q():
    torch.manual_seed(3)
    logits = torch.randn(2, len(EDGES), 8)
    draws = exact_draws(logits, 4000, seed=4)
    log_q = PairGate(logits.expand(4000, *logits.shape), STRUCTURE).log_prob(draws)
    for i in range(5):
        assert log_q[i].item() == pytest.approx(_log_q_by_hand(logits, draws[i]), abs=1e-5)
    # node 5 of the normal cell: frequencies of its 10 pairs against q
    into = [e for e, (to, _) in enumerate(EDGES) if to == 5]
    q = PairGate(logits, STRUCTURE).pair_log_probs()[-1][0].exp()
    kept = (draws[:, 0, into, 0] == 0).float()
    pairs = list(itertools.combinations(range(len(into)), 2))
    freq = torch.tensor([(kept[:, a] * kept[:, b]).mean().item() for a, b in pairs])
    assert torch.allclose(freq, q, atol=0.03)


def test_relaxed_draws_keep_two_inputs_per_node_in_expectation():
    logits = torch.randn(2, len(EDGES), 8)
    value = PairGate(logits.expand(6, *logits.shape), STRUCTURE, 0.7).rsample()
    assert torch.allclose(value.sum(-1), torch.ones(6, 2, len(EDGES)))
    kept = 1 - value[..., 0]
    for node in range(NODES):
        into = [e for e, (to, _) in enumerate(EDGES) if to == node + 2]
        assert torch.allclose(kept[..., into].sum(-1), torch.full((6, 2), 2.0))
    assert torch.equal(kept[..., :2], torch.ones(6, 2, 2))  # node 2 has one pair: kept
    assert value[..., 2:, :].min() > 0 and value.max() < 1  # the rest relaxed, not rounded


def test_mode_statistics_and_shared_draws():
    net = small()
    logits = torch.full(net.layout.shape, -3.0)
    logits[..., 0] = 0.0
    arch = gates_of(parse_genotype(DARTS_V2))
    logits = torch.where(arch.bool(), torch.tensor(3.0), logits)  # op logits of V2's choices
    logits[..., 0] = 3.0 * (1 - arch[..., 0])  # keep logits of V2's edges
    assert net.describe(net.mode(logits)) == str(parse_genotype(net.describe(arch)))
    stats = net.gate_statistics(logits)
    assert len(stats["edges"]) == 28 and stats["edges"][0]["edge"] == "normal 2<-0"
    assert all(sum(e["probs"].values()) == pytest.approx(1) for e in stats["edges"])
    shared = net.layout.distribution(logits, 5, 1.0, hard=True, shared=True).sample()
    assert all(torch.equal(shared[0], row) for row in shared)


def test_subnet_matches_search_network_and_keeps_only_its_ops():
    net = small(cells=4)
    images = torch.randn(3, 3, 8, 8)
    for arch in exact_draws(torch.randn(net.layout.shape), 4, seed=7):
        subnet = build_subnet(net, arch)
        rebuilt = subnet_from_spec(json.loads(json.dumps(subnet_spec(net, arch))))
        rebuilt.load_state_dict(subnet.state_dict())
        with torch.no_grad():
            expected = net.forward_architecture(images, arch)
            assert torch.allclose(subnet(images), expected, atol=1e-5)
            assert torch.equal(rebuilt.eval()(images), subnet(images))
        assert count(subnet) == net.count_parameters(arch) < count(net) / 3
        assert len(subnet.cells[0].ops) == 2 * NODES


def test_subnet_spec_with_a_malformed_genotype_is_refused():
    with pytest.raises(ValueError, match="unknown op"):
        subnet_from_spec(
            {"space": "darts", "channels": 4, "cells": 3, "num_classes": 10, "in_channels": 3,
             "genotype": DARTS_V2.replace("sep_conv_3x3", "sep_conv_9x9")}
        )  # fmt: skip
