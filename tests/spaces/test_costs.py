"""Additive gate costs equal the exact counts, the Pareto front, and the latency estimate."""

import pytest
import torch

from bayesnas.errors import UserError
from bayesnas.selection.rank import flops_per_image
from bayesnas.spaces import create_space
from bayesnas.spaces.costs import arch_cost, gate_costs, pareto_front
from bayesnas.spaces.latency import latency_table


def _exact(net, arch, metric, size):
    if metric == "params":
        return net.count_parameters(arch) / 1e6
    example = torch.zeros(1, net.config["in_channels"], size, size)
    return flops_per_image(net, arch, example) / 1e6


@pytest.mark.parametrize("metric", ["params", "flops"])
def test_nb201_cost_adds_up_to_the_exact_count(metric):
    net = create_space("nb201", channels=4, cells=2, in_channels=1).eval()
    base, per_gate = gate_costs(net, metric, 28)
    for ops in ([3, 2, 4, 3, 1, 3], [2, 3, 3, 4, 4, 2], [1, 1, 4, 3, 3, 3]):  # every edge live
        arch = torch.nn.functional.one_hot(torch.tensor(ops), 5).float()
        assert arch_cost(base, per_gate, arch) == pytest.approx(_exact(net, arch, metric, 28))
    assert (per_gate[:, :2] == 0).all() and per_gate[:, 3].min() > per_gate[:, 2].max()


@pytest.mark.parametrize("metric", ["params", "flops"])
def test_resnet_all_kept_costs_the_whole_network(metric):
    net = create_space("resnet", width=4, blocks=1).eval()
    base, per_gate = gate_costs(net, metric, 16)
    arch = torch.ones(net.layout.shape)
    assert arch_cost(base, per_gate, arch) == pytest.approx(_exact(net, arch, metric, 16))
    assert per_gate.shape == net.layout.shape and (per_gate > 0).all()


def test_a_space_without_additive_costs_is_one_line():
    net = create_space("nb201", channels=4, cells=1)
    with pytest.raises(UserError, match="unknown cost"):
        gate_costs(net, "latency", 32)

    opaque = create_space("densenet121", growth=2, dense_layers=1)  # no ``gate_costs`` hook
    with pytest.raises(UserError, match="no additive cost"):
        gate_costs(opaque, "flops", 32)


def test_pareto_front():
    accuracy = [0.9, 0.8, 0.85, 0.7, 0.9]
    cost = [10.0, 5.0, 12.0, 6.0, 11.0]
    assert pareto_front(accuracy, cost) == [True, True, False, False, False]


def test_latency_is_a_positive_per_op_table():
    net = create_space("nb201", channels=4, cells=1)
    base, per_gate = latency_table(net, 16)
    assert base > 0 and per_gate.shape == (6, 5)
    assert (per_gate[:, :2] == 0).all() and (per_gate[:, 2:] > 0).all()
    assert latency_table(create_space("resnet", width=4, blocks=1), 16) is None
