"""The gate distributions: exact draws, the Concrete relaxation (Eq. 16) and the analytic KL."""

import math

import pytest
import torch
from torch.distributions import kl_divergence

from bayesnas.gates import BernoulliGate, CategoricalGate, GateLayout


def test_bernoulli_hard_draws_follow_keep_probability():
    torch.manual_seed(0)
    keep_logits = torch.tensor([-2.0, 0.0, 2.2])
    draws = BernoulliGate(keep_logits, hard=True).sample((40000,))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    expected = torch.sigmoid(keep_logits)
    sigma = (expected * (1 - expected) / 40000).sqrt()
    assert ((draws.mean(0) - expected).abs() < 4 * sigma).all()


def test_relaxed_draw_is_eq16_concrete():
    """mask = 1 - sigmoid((logit p + log(-log r1) - log(-log r2)) / tau): P(mask > 1/2) = 1 - p."""
    torch.manual_seed(1)
    p = torch.tensor([0.1, 0.5, 0.8])
    keep_logits = torch.log((1 - p) / p)
    draws = BernoulliGate(keep_logits, temperature=0.2).rsample((40000,))
    assert ((draws >= 0) & (draws <= 1)).all()
    assert torch.allclose((draws > 0.5).float().mean(0), 1 - p, atol=0.015)
    r1, r2 = torch.rand(2, 40000, 3)
    reference = 1 - torch.sigmoid(
        (torch.log(p / (1 - p)) + (-r1.log()).log() - (-r2.log()).log()) / 0.2
    )
    quantiles = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    assert torch.allclose(draws.quantile(quantiles, 0), reference.quantile(quantiles, 0), atol=0.03)


def test_relaxed_draw_has_gradient_and_sharpens_with_temperature():
    keep_logits = torch.zeros(1000, requires_grad=True)
    soft = BernoulliGate(keep_logits, temperature=1.0).rsample()
    soft.sum().backward()
    assert keep_logits.grad.abs().sum() > 0
    sharp = BernoulliGate(keep_logits.detach(), temperature=0.05).rsample()
    assert ((sharp < 0.05) | (sharp > 0.95)).float().mean() > (
        (soft < 0.05) | (soft > 0.95)
    ).float().mean()


def test_bernoulli_kl_to_half_is_paper_entropy_term():
    p = torch.tensor([0.1, 0.3, 0.5])
    q = BernoulliGate(torch.log((1 - p) / p))
    prior = BernoulliGate(torch.zeros(3))
    entropy = -(p * p.log() + (1 - p) * (1 - p).log())
    assert torch.allclose(kl_divergence(q, prior), math.log(2) - entropy, atol=1e-6)


def test_bernoulli_log_prob_scores_rounded_value():
    q = BernoulliGate(torch.tensor([0.7]))
    assert torch.allclose(q.log_prob(torch.tensor([0.8])), q.log_prob(torch.tensor([1.0])))
    assert torch.allclose(q.log_prob(torch.tensor([1.0])), torch.sigmoid(torch.tensor([0.7])).log())


def test_categorical_hard_draws_follow_softmax():
    torch.manual_seed(2)
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5])
    draws = CategoricalGate(logits, hard=True).sample((40000,))
    assert torch.equal(draws.sum(-1), torch.ones(40000))
    probs = torch.softmax(logits, 0)
    assert torch.allclose(draws.mean(0), probs, atol=4 * (0.25 / 40000) ** 0.5)


def test_categorical_relaxed_draws_on_simplex_and_kl_to_uniform():
    logits = torch.randn(6, 5)
    q = CategoricalGate(logits, temperature=0.5)
    draws = q.rsample((100,))
    assert torch.allclose(draws.sum(-1), torch.ones(100, 6), atol=1e-5)
    probs = torch.softmax(logits, -1)
    entropy = -(probs * probs.log()).sum(-1)
    kl = kl_divergence(q, CategoricalGate(torch.zeros(6, 5)))
    assert torch.allclose(kl, math.log(5) - entropy, atol=1e-6)


@pytest.mark.parametrize("kind,shape", [("bernoulli", (7,)), ("categorical", (6, 5))])
def test_layout_builds_one_vectorised_site(kind, shape):
    group_of = torch.tensor([0, 0, 0, 1, 1, 2, 2]) if kind == "bernoulli" else None
    layout = GateLayout(kind, shape, group_of)
    logits = torch.zeros(3) if kind == "bernoulli" else torch.zeros(shape)
    q = layout.distribution(logits, batch=4, temperature=0.5, hard=False)
    assert q.batch_shape == (4,) and q.event_shape == shape
    assert q.rsample().shape == (4, *shape)
    assert layout.prior(4, torch.device("cpu"), torch.float32).event_shape == shape
