"""The NAS-Bench-201 space: strings, shapes, and sub-networks that compute only what they keep."""

import itertools

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from bayesnas.spaces import create_space
from bayesnas.spaces.nb201.cell import EDGES, OPS, from_string, to_string


def test_every_architecture_round_trips_through_its_string():
    seen = set()
    for ops in itertools.product(range(len(OPS)), repeat=len(EDGES)):
        text = to_string(ops)
        assert from_string(text) == ops
        seen.add(text)
    assert len(seen) == 15625


def test_string_notation_is_nas_bench_201():
    text = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
    net = create_space("nb201", channels=4, cells=1)
    arch = net.architecture(text)
    assert arch.shape == (6, 5)
    assert net.describe(arch) == text


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|none~0|",
        "|none~0|+|none~0|none~1|",
        "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
    ],
)
def test_malformed_strings_are_rejected(bad):
    with pytest.raises(ValueError):
        from_string(bad)


@pytest.mark.parametrize("channels,cells,in_ch,size", [(8, 2, 3, 32), (4, 1, 1, 28)])
def test_shapes(channels, cells, in_ch, size):
    net = create_space("nb201", channels=channels, cells=cells, in_channels=in_ch, num_classes=7)
    images = torch.randn(3, in_ch, size, size)
    gates = torch.softmax(torch.randn(3, 6, 5), -1)
    assert net(images, gates).shape == (3, 7)
    assert net.forward_architecture(images, net.mode(torch.randn(6, 5))).shape == (3, 7)
    assert len(net.cells()) == 3 * cells


def test_sub_network_equals_super_network_at_one_hot_gates():
    torch.manual_seed(0)
    net = create_space("nb201", channels=4, cells=2).eval()
    images = torch.randn(2, 3, 16, 16)
    for _ in range(20):
        arch = torch.nn.functional.one_hot(torch.randint(0, 5, (6,)), 5).float()
        expected = net(images, arch.expand(2, 6, 5))
        assert torch.allclose(net.forward_architecture(images, arch), expected, atol=1e-5)


def _flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_dropped_ops_cost_nothing():
    """FLOPs of a sub-network = skeleton + exactly the chosen ops on edges that reach the output."""
    torch.manual_seed(0)
    net = create_space("nb201", channels=4, cells=1).eval()
    images = torch.randn(2, 3, 16, 16)
    none = torch.nn.functional.one_hot(torch.zeros(6, dtype=torch.long), 5).float()
    skeleton = _flops(lambda: net.forward_architecture(images, none))
    for ops in [(3,) * 6, (0, 0, 0, 3, 0, 0), (3, 3, 0, 0, 0, 2), (1, 4, 2, 3, 0, 1)]:
        arch = torch.nn.functional.one_hot(torch.tensor(ops), 5).float()
        net.forward_architecture(images, arch)  # fills the pooling's per-size count cache
        total = _flops(lambda arch=arch: net.forward_architecture(images, arch))
        extra = 0
        x = {s: torch.randn(2, c, s, s) for s, c in ((16, 4), (8, 8), (4, 16))}
        live = {3}
        for edge in reversed(range(6)):
            to, src = EDGES[edge]
            if ops[edge] and to in live:
                live.add(src)
        for cell in net.cells():
            size = {4: 16, 8: 8, 16: 4}[cell.conv1x1[0].conv.in_channels]
            for edge, (to, _) in enumerate(EDGES):
                if ops[edge] in (2, 3, 4) and to in live:
                    op, inp = ops[edge], x[size]
                    extra += _flops(lambda c=cell, e=edge, o=op, i=inp: c.apply_op(e, o, i))
        assert total == skeleton + extra, ops


def test_mixture_ops_are_all_computed_in_training():
    """Relaxed training computes every op that carries weight; 'none' costs nothing."""
    net = create_space("nb201", channels=4, cells=1)
    images = torch.randn(2, 3, 16, 16)
    gates = torch.softmax(torch.randn(2, 6, 5), -1)
    all_convs = _flops(lambda: net(images, gates))
    none = torch.nn.functional.one_hot(torch.zeros(6, dtype=torch.long), 5).float()
    assert all_convs > _flops(lambda: net.forward_architecture(images, none))


def test_gate_statistics_are_distributions():
    net = create_space("nb201", channels=4, cells=1)
    stats = net.gate_statistics(torch.randn(6, 5))
    assert len(stats["edges"]) == 6
    for edge in stats["edges"]:
        assert abs(sum(edge["probs"].values()) - 1) < 1e-6
        assert 0 <= edge["entropy"] <= torch.log(torch.tensor(5.0)) + 1e-6
    from_string(stats["mode"])
