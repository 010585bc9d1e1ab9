"""The batched nb201 mixture against the previous per-example one: outputs and gradients.

Where an op is wanted by every example or by at most a quarter of the batch both compute the
same thing. Where it is wanted by more than a quarter but not all, the new one computes it on the
whole batch with each example's own weight: the exact relaxed mixture, which the previous one
only approximated (its BatchNorm saw the subset, its weights below 1e-3 were cut).
"""

import previous_mixture
import pytest
import torch

from bayesnas.spaces import create_space
from bayesnas.spaces.nb201.cell import CONV3, SKIP
from bayesnas.spaces.nb201.mixture import ALL, NO_ROWS, ONLY, mixture_plan


def _net_and_batch(seed: int = 0, batch: int = 16):
    torch.manual_seed(seed)
    net = create_space("nb201", channels=4, cells=1)
    images = torch.randn(batch, 3, 12, 12)
    return net, images


def _outputs_and_grads(net, images, gates, forward):
    net.zero_grad(set_to_none=True)
    gates = gates.clone().requires_grad_(True)
    out = forward(net, images, gates)
    out.square().sum().backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    return out.detach(), grads, gates.grad.clone()


def _assert_same(a, b, atol=1e-5):
    out_a, grads_a, gate_a = a
    out_b, grads_b, gate_b = b
    torch.testing.assert_close(out_a, out_b, atol=atol, rtol=1e-4)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], atol=atol, rtol=1e-4)
    torch.testing.assert_close(gate_a, gate_b, atol=atol, rtol=1e-4)


def _new(net, images, gates):
    return net(images, gates)


def test_uniform_q_at_tau_one_computes_every_op_on_the_whole_batch_as_before():
    net, images = _net_and_batch()
    gates = torch.nn.functional.gumbel_softmax(torch.zeros(16, 6, 5), tau=1.0)
    assert (gates > 1e-3).all()
    plan = mixture_plan(gates)
    assert all(plan[e][op] is ALL for e in range(6) for op in range(1, 5))
    _assert_same(
        _outputs_and_grads(net, images, gates, _new),
        _outputs_and_grads(net, images, gates, previous_mixture.net_forward),
    )


def test_ops_wanted_by_few_examples_run_on_those_examples_only_as_before():
    net, images = _net_and_batch(1)
    torch.manual_seed(1)
    gates = torch.zeros(16, 6, 5)
    gates[:, :, CONV3] = 1.0
    gates[:3, :, CONV3] = 0.6  # three examples also weigh skip: at most a quarter of 16
    gates[:3, :, SKIP] = 0.4
    plan = mixture_plan(gates)
    assert all(plan[e][CONV3] is ALL and plan[e][SKIP].tolist() == [0, 1, 2] for e in range(6))
    _assert_same(
        _outputs_and_grads(net, images, gates, _new),
        _outputs_and_grads(net, images, gates, previous_mixture.net_forward),
    )


def test_ops_wanted_by_many_examples_give_the_exact_relaxed_mixture():
    net, images = _net_and_batch(2)
    torch.manual_seed(2)
    gates = torch.nn.functional.gumbel_softmax(torch.zeros(16, 6, 5), tau=0.3)
    plan = mixture_plan(gates)
    partial = [
        plan[e][op]
        for e in range(6)
        for op in range(1, 5)
        if plan[e][op] is not ALL and plan[e][op] is not NO_ROWS
    ]
    assert any(1e-3 < float(w) < 1 for w in gates.flatten())
    dense = _outputs_and_grads(
        net, images, gates, lambda n, i, g: previous_mixture.net_forward(n, i, g, floor=-1.0)
    )
    new = _outputs_and_grads(net, images, gates, _new)
    # only the subset rows (at most a quarter of the batch) and weights < 1e-3 may differ
    if not partial:
        _assert_same(new, dense)
    else:
        assert (new[0] - dense[0]).abs().max() < 0.05 * dense[0].abs().max()


def test_an_edge_left_with_one_op_applies_it_without_a_weight():
    net, images = _net_and_batch(3)
    gates = torch.softmax(0.1 * torch.randn(16, 6, 5), -1)  # every weight above the floor
    gates[:, 0] = torch.nn.functional.one_hot(torch.tensor(CONV3), 5).float()
    plan = mixture_plan(gates)
    assert plan[0][CONV3] is ONLY and all(plan[0][op] is NO_ROWS for op in (1, 2, 4))
    new = _outputs_and_grads(net, images, gates, _new)
    old = _outputs_and_grads(net, images, gates, previous_mixture.net_forward)
    # edge 0's gate is a constant 1 (its other ops pruned: softmax is exactly one-hot and
    # passes no gradient to q's logits), so only its gradient with respect to the gate value
    # itself may differ; outputs, weight gradients and every other gate gradient agree
    _assert_same((new[0], new[1], new[2][:, 1:]), (old[0], old[1], old[2][:, 1:]))
    logits = torch.tensor([-1e4, -1e4, -1e4, 0.0, -1e4], requires_grad=True)
    torch.softmax(logits, -1)[CONV3].backward()
    assert (logits.grad == 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_draws_match_the_previous_mixture(seed):
    net, images = _net_and_batch(seed, batch=20)
    torch.manual_seed(seed)
    index = torch.randint(0, 5, (20, 6))
    gates = torch.nn.functional.one_hot(index, 5).float()
    new = _outputs_and_grads(net, images, gates, _new)
    old = _outputs_and_grads(net, images, gates, previous_mixture.net_forward)
    plan = mixture_plan(gates)
    if all(p is NO_ROWS or p is ONLY or not isinstance(p, str) for row in plan for p in row):
        _assert_same(new, old)
    torch.testing.assert_close(new[0].shape, old[0].shape)
