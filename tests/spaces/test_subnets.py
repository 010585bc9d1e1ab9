"""Standalone sub-networks: same outputs as the super-network's architecture, only kept weights."""

import json

import pytest
import torch
from helpers import count, resnet_arch, supernet
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.subnet import build_subnet, subnet_from_spec, subnet_spec

pytestmark = pytest.mark.usefixtures("one_thread_module")


def assert_same_outputs(net: SuperNet, arch: torch.Tensor) -> nn.Module:
    """Check the sub-network (and one rebuilt from its JSON spec) against the super-network."""
    subnet = build_subnet(net, arch)
    rebuilt = subnet_from_spec(json.loads(json.dumps(subnet_spec(net, arch))))
    rebuilt.load_state_dict(subnet.state_dict())
    images = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        expected = net.forward_architecture(images, arch)
        assert torch.allclose(subnet(images), expected, atol=1e-5)
        assert torch.equal(rebuilt.eval()(images), subnet(images))
    assert count(subnet) < count(net)
    return subnet


NB201_ARCHS = {
    "mixed": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_1x1~0|skip_connect~1|"
    "avg_pool_3x3~2|",
    # node 1 is zero: the conv 2<-1 leaves its BN shift, the pool 3<-1 contributes nothing
    "zero_node": "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|"
    "nor_conv_3x3~2|",
    # node 2 does not reach the output: edges 2<-0 and 2<-1 are dropped
    "dead_node": "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_3x3~0|"
    "avg_pool_3x3~1|none~2|",
    "all_none": "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
}


@pytest.mark.parametrize("cells", [1, 2])
@pytest.mark.parametrize("name", sorted(NB201_ARCHS))
def test_nb201_subnet_matches_super_network(name, cells):
    net = supernet("nb201", channels=4, cells=cells)
    assert_same_outputs(net, net.architecture(NB201_ARCHS[name]))


def test_nb201_random_architectures_match():
    net = supernet("nb201", channels=4, cells=1)
    torch.manual_seed(1)
    for _ in range(8):
        assert_same_outputs(net, nn.functional.one_hot(torch.randint(0, 5, (6,)), 5).float())


def test_nb201_subnet_holds_only_the_ops_that_matter():
    net = supernet("nb201", channels=4, cells=1)
    keys = set(build_subnet(net, net.architecture(NB201_ARCHS["dead_node"])).state_dict())
    cell_convs = {k.split(".")[3] for k in keys if ".edges." in k}
    assert cell_convs == {"conv3x3_0", "conv3x3_3"}  # 2<-0, 2<-1 feed a dead node; pool: none
    keys = set(build_subnet(net, net.architecture(NB201_ARCHS["zero_node"])).state_dict())
    assert "layers.0.edges.conv1x1_2.bn.running_mean" in keys  # conv on a zero node: BN only
    assert not any(k.startswith("layers.0.edges.conv1x1_2.conv") for k in keys)
    keys = set(build_subnet(net, net.architecture(NB201_ARCHS["all_none"])).state_dict())
    assert not any(".edges." in k for k in keys)


def test_nb201_parameter_count_is_the_kept_convs():
    net = supernet("nb201", channels=4, cells=2)
    subnet = build_subnet(net, net.architecture(NB201_ARCHS["dead_node"]))
    per_cell = {c: 2 * (9 * c * c + 2 * c) for c in (4, 8, 16)}  # two 3x3 ReLUConvBN per cell
    all_ops = {c: 6 * (c * c + 2 * c) + 6 * (9 * c * c + 2 * c) for c in (4, 8, 16)}
    expected = count(net) - sum(2 * (all_ops[c] - per_cell[c]) for c in (4, 8, 16))
    assert count(subnet) == expected


@pytest.mark.parametrize("name", ["mixed", "dead_node", "all_none", "zero_node"])
def test_nb201_count_parameters_agrees(name):
    net = supernet("nb201", channels=4, cells=1)
    arch = net.architecture(NB201_ARCHS[name])
    assert count(build_subnet(net, arch)) == net.count_parameters(arch)


@pytest.mark.parametrize("blocks", [1, 2])
@pytest.mark.parametrize("keep", [0.3, 0.7, 1.0])
def test_resnet_subnet_matches_super_network(blocks, keep):
    net = supernet("resnet", width=4, blocks=blocks)
    for seed in range(3):
        assert_same_outputs(net, resnet_arch(net, keep, seed))


def test_resnet_subnet_holds_only_kept_channels():
    net = supernet("resnet", width=4, blocks=2)
    arch = net.canonical(resnet_arch(net, 0.6, seed=3))
    subnet = build_subnet(net, arch)
    expected = sum(count(m) for m in (net.stem, net.head))
    expected += sum(count(block.shortcut) for block in net.blocks)
    for b, block in enumerate(net.blocks):
        for r, branch in enumerate(block.branches):
            conv = 4 * b + 2 * r
            n_in = int(arch[net.offsets[conv] : net.offsets[conv + 1]].sum())
            n_mid = int(arch[net.offsets[conv + 1] : net.offsets[conv + 2]].sum())
            if n_in and n_mid:
                c_out = branch.conv2.out_channels
                expected += 9 * n_in * n_mid + 2 * n_mid + 9 * n_mid * c_out + 2 * c_out
    assert count(subnet) == expected
    keys = set(subnet.state_dict())
    assert not any(k.startswith(("blocks.0.branches.0.", "blocks.0.branches.1.")) for k in keys)
    assert "blocks.1.branches.0.conv1.weight" in keys


def test_resnet_count_parameters_agrees():
    net = supernet("resnet", width=4, blocks=2)
    for keep in (0.3, 1.0):
        arch = resnet_arch(net, keep, seed=5)
        assert count(build_subnet(net, arch)) == net.count_parameters(arch)
