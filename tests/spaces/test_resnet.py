"""SupNet-M: the paper's parameter count, channel gates, and kept-channel sub-networks."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.spaces import create_space


def test_width_96_has_the_papers_26_2m_parameters():
    net = create_space("resnet", width=96)
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == 26.2


def test_one_gate_per_input_channel_one_group_per_conv():
    net = create_space("resnet", width=8, blocks=2)
    assert len(net.convs) == 3 * 2 * 2 * 2
    assert net.layout.shape == (sum(c.in_channels for c in net.convs),)
    assert net.init_gate_logits(0.1).shape == (len(net.convs),)
    assert torch.allclose(torch.sigmoid(net.init_gate_logits(0.1)), torch.tensor(0.9))
    assert net.gated_sq_norms().shape == net.layout.shape


def test_kept_sub_network_equals_masked_super_network():
    torch.manual_seed(0)
    net = create_space("resnet", width=8, blocks=2).eval()
    images = torch.randn(2, 3, 16, 16)
    for keep in (1.0, 0.7, 0.3):
        arch = net.canonical((torch.rand(net.layout.shape) < keep).float())
        expected = net(images, arch.expand(2, -1))
        assert torch.allclose(net.forward_architecture(images, arch), expected, atol=1e-5)


def test_branch_without_channels_is_removed():
    net = create_space("resnet", width=8, blocks=1)
    arch = torch.ones(net.layout.shape)
    arch[net.offsets[0] : net.offsets[1]] = 0  # every input channel of block 1, branch 1, conv 1
    canonical = net.canonical(arch)
    assert canonical[net.offsets[0] : net.offsets[2]].sum() == 0
    assert canonical[net.offsets[2] :].sum() == arch[net.offsets[2] :].sum()
    assert net.describe(canonical).startswith("s1: -+8")


def _flops(net, images, arch) -> int:
    with FlopCounterMode(display=False) as counter:
        net.forward_architecture(images, arch)
    return counter.get_total_flops()


def test_dropped_channels_and_branches_cost_nothing():
    """Branch conv FLOPs scale with kept input x kept middle channels; dropped branches cost 0."""
    torch.manual_seed(0)
    net = create_space("resnet", width=8, blocks=1).eval()
    images = torch.randn(2, 3, 16, 16)
    full = torch.ones(net.layout.shape)
    dropped_all = torch.zeros(net.layout.shape)
    base = _flops(net, images, dropped_all)
    arch = net.canonical((torch.rand(net.layout.shape) < 0.6).float())
    expected = base
    size = 16
    for conv in range(0, len(net.convs), 2):
        c1, c2 = net.convs[conv], net.convs[conv + 1]
        size_out = size // c1.stride[0]
        k1 = int(arch[net.offsets[conv] : net.offsets[conv + 1]].sum())
        k2 = int(arch[net.offsets[conv + 1] : net.offsets[conv + 2]].sum())
        if k1 and k2:
            expected += 2 * 2 * size_out**2 * 9 * (k2 * k1 + c2.out_channels * k2)
        if conv % 4 == 2:
            size = size_out
    assert _flops(net, images, arch) == expected
    assert _flops(net, images, full) > _flops(net, images, arch) > base


def test_gate_statistics():
    net = create_space("resnet", width=4, blocks=1)
    stats = net.gate_statistics(net.init_gate_logits(0.1))
    assert len(stats["groups"]) == len(net.convs)
    assert all(abs(g["keep"] - 0.9) < 1e-6 for g in stats["groups"])
    assert abs(stats["expected_channels_dropped"] - 0.1) < 1e-6
