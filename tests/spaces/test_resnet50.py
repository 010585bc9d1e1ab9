"""resnet50: ResNet-50 with gated 1x1 / 3x3 / dilated branches, and exact smaller sub-networks."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from helpers import count, supernet
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.errors import UserError
from bayesnas.report import figures as plots
from bayesnas.spaces import create_space
from bayesnas.spaces.resnet50.network import branch_widths
from bayesnas.spaces.subnet import build_subnet, subnet_from_spec, subnet_spec

pytestmark = pytest.mark.usefixtures("one_thread_module")
TINY = {"base_width": 6, "bottlenecks": 2}  # widths 6/12/24/48: branches of 2/2/2 ... 16/16/16


def random_arch(net, keep: float, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return (torch.rand(net.layout.shape) < keep).float()


def test_resnet50_with_branches_in_place_of_its_3x3_convs():
    """ResNet-50 (25.6 M) minus its 3x3 convs plus the three branches: 22.2 M parameters."""
    net = create_space("resnet50")
    reference = torchvision.models.resnet50(weights=None)  # no download
    assert count(reference) == 25_557_032
    threes = [m for n, m in reference.named_modules() if n.endswith("conv2")]
    branches = [p for n, p in net.named_parameters() if ".branches." in n]
    assert count(net) == count(reference) - sum(map(count, threes)) + sum(
        map(torch.numel, branches)
    )
    assert count(net) == 22_219_304
    rest = sorted(tuple(p.shape) for n, p in net.named_parameters() if ".branches." not in n)
    kept = [p for n, p in reference.named_parameters() if ".conv2." not in n]
    assert rest == sorted(tuple(p.shape) for p in kept)
    for three, block in zip(threes, net.bottlenecks, strict=True):
        width = three.in_channels
        kernels = [(c.kernel_size, c.dilation, c.out_channels) for c in block.convs]
        assert kernels == [((1, 1), (1, 1), width // 3), ((3, 3), (1, 1), width // 3),
                           ((3, 3), (2, 2), width - 2 * (width // 3))]  # fmt: skip
        assert [c.stride for c in block.convs] == [three.stride] * 3
    assert net.layout.shape == (3 * sum(n * 64 * 2**s for s, n in enumerate((3, 4, 6, 3))),)


def test_one_gate_per_input_channel_one_group_per_branch():
    net = create_space("resnet50", **TINY)
    assert len(net.convs) == 4 * 2 * 3
    assert net.layout.shape == (sum(c.in_channels for c in net.convs),)
    assert net.init_gate_logits(0.1).shape == (len(net.convs),)
    assert net.gated_sq_norms().shape == net.layout.shape
    assert net.group_names()[:4] == [
        "s1.b1.conv1x1",
        "s1.b1.conv3x3",
        "s1.b1.dil3x3",
        "s1.b2.conv1x1",
    ]
    assert branch_widths(7) == [2, 2, 3]
    with pytest.raises(UserError, match="--base-width must be at least 3"):
        create_space("resnet50", base_width=2)


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_exact_architecture_equals_the_gated_super_network(keep, mode):
    """Equal in eval mode and in train mode (batch statistics, as BN recalibration uses); in
    float64, as train-mode BN over 3 examples at 1x1 pixels amplifies float32 rounding."""
    net = supernet("resnet50", **TINY).double()
    net.train(mode == "train")
    images = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    for seed in range(3):
        arch = random_arch(net, keep, seed).double()
        with torch.no_grad():
            expected = net(images, arch.expand(3, -1))
            assert torch.allclose(net.forward_architecture(images, arch), expected, atol=1e-10)


def _expected_count(net, arch) -> int:
    """Parameters left when each branch keeps its kept inputs and conv1 its used channels."""
    total = count(net)
    for b, block in enumerate(net.bottlenecks):
        width = block.conv1.out_channels
        masks = [arch[net.offsets[g] : net.offsets[g + 1]].bool() for g in range(3 * b, 3 * b + 3)]
        used = int(torch.stack(masks).any(0).sum())
        total -= (width - used) * (block.conv1.in_channels + 2)  # conv1 rows, bn1 channels
        for conv, mask in zip(block.convs, masks, strict=True):
            total -= conv.kernel_size[0] ** 2 * conv.out_channels * int((~mask).sum())
    return total


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.7, 1.0])
def test_subnet_matches_and_holds_only_kept_channels(keep):
    net = supernet("resnet50", **TINY)
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
        assert count(subnet) == _expected_count(net, arch) == net.count_parameters(arch)
        assert keep == 1.0 or count(subnet) < count(net)


def test_a_branch_without_inputs_is_removed():
    net = supernet("resnet50", **TINY)
    arch = torch.ones(net.layout.shape)
    arch[net.offsets[1] : net.offsets[2]] = 0  # block 1's 3x3 branch
    arch[net.offsets[3] : net.offsets[3] + 2] = 0  # block 2's 1x1 branch: 2 of 6 inputs
    keys = set(build_subnet(net, arch).state_dict())
    assert "blocks.0.branches.1.weight" not in keys
    assert {"blocks.0.branches.0.weight", "blocks.0.branches.2.weight"} <= keys
    assert build_subnet(net, arch).state_dict()["blocks.1.branches.0.weight"].shape == (2, 4, 1, 1)
    assert net.describe(arch).startswith("s1: 6+-+6 4+6+6 | s2: 12+12+12")


def test_dropped_branches_and_channels_cost_nothing():
    net = create_space("resnet50", **TINY).eval()
    images = torch.randn(2, 3, 32, 32)

    def flops(arch):
        with FlopCounterMode(display=False) as counter:
            net.forward_architecture(images, arch)
        return counter.get_total_flops()

    full = flops(torch.ones(net.layout.shape))
    arch = torch.ones(net.layout.shape)
    arch[net.offsets[0] : net.offsets[3]] = 0  # every branch of block 1: conv1 unused as well
    side = 8  # block 1 runs at 8x8 on 32-pixel images
    conv1 = 6 * 6 * side * side  # MACs per image: 6 in, 6 out, 1x1
    branches = side * side * 6 * (2 * 1 + 2 * 9 + 2 * 9)
    assert flops(arch) == full - 2 * 2 * (conv1 + branches)  # 2 images, FLOPs = 2 x MACs


def test_encoding_and_statistics():
    net = create_space("resnet50", **TINY)
    arch = random_arch(net, 0.5, seed=1)
    assert torch.equal(net.decode(net.encode(arch)), arch)
    torch.manual_seed(0)
    logits = torch.randn(len(net.convs))
    stats = net.gate_statistics(logits)
    assert stats["units"] == "branches" and len(stats["groups"]) == len(net.convs)
    fractions = plots.drop_fractions(stats)
    keep = torch.sigmoid(logits).double()
    sizes = torch.tensor([c.in_channels for c in net.convs], dtype=torch.float64)
    assert fractions["branches_expected"] == pytest.approx(float(((1 - keep) ** sizes).mean()))
    assert fractions["branches_mode"] == float((keep <= 0.5).double().mean())
