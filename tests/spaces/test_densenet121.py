"""densenet121: DenseNet-121's size, one gate per incoming edge, and exact smaller sub-networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from helpers import count, supernet
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.report import figures as plots
from bayesnas.spaces import create_space
from bayesnas.spaces.subnet import build_subnet, subnet_from_spec, subnet_spec

pytestmark = pytest.mark.usefixtures("one_thread_module")
TINY = {"growth": 4, "dense_layers": 3}  # 4 blocks of 3 layers: 6 edges per block


def random_arch(net, keep: float, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return (torch.rand(net.layout.shape) < keep).float()


def test_defaults_are_densenet121_as_torchvision_builds_it():
    net = create_space("densenet121")
    reference = torchvision.models.densenet121(weights=None)  # no download
    assert count(net) == count(reference) == 7_978_856  # "about 8.0 M"
    shapes = sorted(tuple(p.shape) for p in net.parameters())
    assert shapes == sorted(tuple(p.shape) for p in reference.parameters())
    assert net.layout.shape == (sum(n * (n + 1) // 2 for n in (6, 12, 24, 16)),)  # 535 edges


def test_one_gate_per_incoming_edge():
    net = create_space("densenet121", **TINY)
    assert net.layout.shape == (4 * (1 + 2 + 3),)
    assert net.init_gate_logits(0.1).shape == net.layout.shape
    assert torch.allclose(torch.sigmoid(net.init_gate_logits(0.1)), torch.tensor(0.9))
    layer = net.layers[2]  # block 1, layer 3: the block input (8 channels) and 2 layers (4 each)
    assert layer.sizes == [8, 4, 4] and layer.first_edge == 3
    norms = net.gated_sq_norms()
    w = layer.conv1.weight.square().sum((0, 2, 3))
    assert torch.allclose(norms[3:6], torch.stack([w[:8].sum(), w[8:12].sum(), w[12:].sum()]))
    assert net.edge_names()[3:6] == ["s1.l3.in", "s1.l3.l1", "s1.l3.l2"]


@pytest.mark.parametrize("keep", [0.0, 0.4, 0.8, 1.0])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_exact_architecture_equals_the_gated_super_network(keep, mode):
    """Equal in eval mode and in train mode (batch statistics, as BN recalibration uses); in
    float64, as train-mode BN over 3 examples at 1x1 pixels amplifies float32 rounding."""
    net = supernet("densenet121", **TINY).double()
    net.train(mode == "train")
    images = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    for seed in range(3):
        arch = random_arch(net, keep, seed).double()
        with torch.no_grad():
            expected = net(images, arch.expand(3, -1))
            assert torch.allclose(net.forward_architecture(images, arch), expected, atol=1e-10)


@pytest.mark.parametrize("keep", [0.0, 0.5, 1.0])
def test_subnet_matches_and_holds_only_kept_channels(keep):
    net = supernet("densenet121", **TINY)
    for seed in range(3):
        arch = random_arch(net, keep, seed)
        subnet = build_subnet(net, arch)
        rebuilt = subnet_from_spec(json.loads(json.dumps(subnet_spec(net, arch))))
        rebuilt.load_state_dict(subnet.state_dict())
        images = torch.randn(2, 3, 16, 16)
        with torch.no_grad():
            expected = net.forward_architecture(images, arch)
            assert torch.allclose(subnet(images), expected, atol=1e-5)
            assert torch.equal(rebuilt.eval()(images), subnet(images))
        dropped = int((net.edge_sizes * (1 - arch)).sum())  # channels of dropped edges
        assert count(subnet) == count(net) - dropped * (2 + 16) == net.count_parameters(arch)
        for layer, sub in zip(net.layers, (s for b in subnet.block_layers for s in b), strict=True):
            kept = [j for j in range(len(layer.sizes)) if arch[layer.first_edge + j]]
            assert sub.kept == kept
            width = sum(layer.sizes[j] for j in kept)
            assert not kept or sub.conv1.weight.shape == (16, width, 1, 1)


def test_dropping_the_block_inputs_removes_their_channels():
    net = supernet("densenet121", **TINY)
    arch = torch.ones(net.layout.shape)
    arch[[0, 1, 3]] = 0  # block 1: every layer's edge from the block input (8 channels)
    subnet = build_subnet(net, arch)
    assert count(net) - count(subnet) == 3 * 8 * (16 + 2)  # conv1 columns and norm1 channels
    assert "blocks.0.0.conv1.weight" not in subnet.state_dict()  # layer 1 had only that edge
    assert subnet.state_dict()["blocks.0.2.conv1.weight"].shape == (16, 8, 1, 1)


def _flops(net, images, arch) -> int:
    with FlopCounterMode(display=False) as counter:
        net.forward_architecture(images, arch)
    return counter.get_total_flops()


def test_dropped_connections_cost_nothing():
    """conv1 FLOPs fall by exactly the dropped edges' channels; the rest is unchanged."""
    net = create_space("densenet121", **TINY).eval()
    images = torch.randn(2, 3, 32, 32)
    full = _flops(net, images, torch.ones(net.layout.shape))
    arch = random_arch(net, 0.5, seed=4)
    sizes = (8, 4, 2, 1)  # feature map side of each block for 32-pixel images
    saved = 0
    for layer in net.layers:
        side = sizes[[s for s, block in enumerate(net.block_layers) if layer in block][0]]
        dropped = sum(s for j, s in enumerate(layer.sizes) if not arch[layer.first_edge + j])
        saved += 2 * 2 * side * side * 16 * dropped  # 2 images, FLOPs = 2 x MACs
    assert saved > 0 and _flops(net, images, arch) == full - saved


def test_encoding_round_trips_and_describes_kept_edges():
    net = create_space("densenet121", **TINY)
    arch = random_arch(net, 0.5, seed=2)
    assert torch.equal(net.decode(net.encode(arch)), arch)
    kept = [
        int(arch[6 * b : 6 * b + 6][s].sum()) for b in range(4) for s in ([0], [1, 2], [3, 4, 5])
    ]
    expected = " | ".join(
        f"b{b + 1}: " + " ".join(map(str, kept[3 * b : 3 * b + 3])) for b in range(4)
    )
    assert net.describe(arch) == expected
    assert torch.equal(net.canonical(arch), arch)


def test_gate_statistics_and_report_fractions():
    net = create_space("densenet121", **TINY)
    torch.manual_seed(0)
    logits = torch.randn(net.layout.shape)
    stats = net.gate_statistics(logits)
    assert len(stats["groups"]) == 24 and stats["units"] == "connections"
    assert [g["channels"] for g in stats["groups"]] == net.edge_sizes.tolist()
    fractions = plots.drop_fractions(stats)
    keep = torch.sigmoid(logits)
    assert fractions["branches_expected"] == pytest.approx(float(1 - keep.mean()))
    assert fractions["branches_mode"] == float((keep <= 0.5).float().mean())
    sizes = net.edge_sizes.float()
    expected = float(((1 - keep) * sizes).sum() / sizes.sum())
    assert fractions["channels_expected"] == pytest.approx(expected)
    assert stats["expected_channels_dropped"] == pytest.approx(expected)
    assert np.isclose(stats["groups"][0]["keep"], float(keep[0]))
