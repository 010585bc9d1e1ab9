"""nb201's support plan (what a captured step computes): read from q once, static in shape, and
the exact mixture of every draw: relaxed, one op per example, or one path per batch."""

import pytest
import torch
import torch.nn.functional as F

from bayesnas.search import PRUNED_LOGIT
from bayesnas.spaces import create_space
from bayesnas.spaces.nb201.cell import CONV1, CONV3, NONE, OPS, POOL, SKIP
from bayesnas.spaces.nb201.mixture import ALL, NO_ROWS, ONLY, mixture_plan, support_plan


def _net_and_batch(batch: int = 6):
    torch.manual_seed(0)
    return create_space("nb201", channels=4, cells=1), torch.randn(batch, 3, 12, 12)


def test_plan_follows_q_support():
    logits = torch.zeros(6, len(OPS))
    logits[1, [NONE, SKIP, CONV1, POOL]] = PRUNED_LOGIT  # conv3x3 alone left: no weight needed
    logits[2, [SKIP, CONV1, POOL]] = PRUNED_LOGIT  # none or conv3x3: conv3x3 keeps its weight
    plan = support_plan(logits)
    assert plan[0] == [NO_ROWS, ALL, ALL, ALL, ALL]
    assert plan[1] == [NO_ROWS, NO_ROWS, NO_ROWS, ONLY, NO_ROWS]
    assert plan[2] == [NO_ROWS, NO_ROWS, NO_ROWS, ALL, NO_ROWS]


def test_plan_equals_the_per_batch_plan_where_that_one_is_exact():
    """Uniform q at tau 1 (every op wanted by every example) and a pruned q: the same plans,
    so the same network outputs to the bit."""
    net, images = _net_and_batch()
    pruned = torch.full((6, len(OPS)), PRUNED_LOGIT)
    pruned[:, CONV3] = 0.0
    for logits in (torch.zeros(6, len(OPS)), pruned):
        gates = F.gumbel_softmax(logits.expand(len(images), 6, len(OPS)), tau=1.0)
        assert support_plan(logits) == mixture_plan(gates)
        dynamic = net(images, gates)
        net.fixed_plan = support_plan(logits)
        try:
            assert torch.equal(net(images, gates), dynamic)
        finally:
            net.fixed_plan = None


@pytest.mark.parametrize("shared", [False, True], ids=["per-example", "per-batch"])
def test_exact_draws_under_the_plan_compute_each_example_own_architecture(shared):
    """One-hot draws weigh every other op by exactly 0: in evaluation mode (per-example
    BatchNorm) each example's output is its own sub-network's."""
    net, images = _net_and_batch()
    net.eval()
    ops = torch.randint(0, len(OPS), (1 if shared else len(images), 6)).expand(len(images), 6)
    gates = F.one_hot(ops, len(OPS)).float()
    net.fixed_plan = support_plan(torch.zeros(6, len(OPS)))
    try:
        out = net(images, gates)
    finally:
        net.fixed_plan = None
    with torch.no_grad():
        each = [net.forward_architecture(images[i : i + 1], gates[i]) for i in range(len(images))]
    torch.testing.assert_close(out.detach(), torch.cat(each), atol=1e-5, rtol=1e-5)


def test_plan_leaves_no_host_read_in_the_forward():
    """Traced as one graph (a host read would break it), and without the plan it cannot be."""
    net, images = _net_and_batch()
    gates = F.gumbel_softmax(torch.zeros(len(images), 6, len(OPS)), tau=1.0)
    traced = torch.compile(net.forward, backend="eager", fullgraph=True)
    with pytest.raises(Exception, match="(?i)data.dependent|local_scalar_dense|tolist"):
        traced(images, gates)
    torch._dynamo.reset()
    net.fixed_plan = support_plan(torch.zeros(6, len(OPS)))
    try:
        torch.testing.assert_close(traced(images, gates), net(images, gates))
    finally:
        net.fixed_plan = None
        torch._dynamo.reset()
