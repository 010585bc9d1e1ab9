"""Architecture gates as Pyro distributions: hard draws, Concrete relaxations and the analytic KL.

A gate is drawn exactly (Bernoulli or one-hot categorical) when sampling architectures, and as its
Concrete relaxation when training (``rsample``). ``log_prob`` scores the rounded value and the KL
is the exact discrete one, so ``TraceMeanField_ELBO`` optimises the paper's Eq. 15 (METHOD.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch.distributions import kl_divergence, register_kl

_SCALAR = torch.Size()


class BernoulliGate(TorchDistribution):
    """Keep-gates a ~ Bernoulli(sigmoid(keep_logits)), relaxed as in Eq. 16 of PGNAS."""

    arg_constraints = {"keep_logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, keep_logits: torch.Tensor, temperature: float = 1.0, hard: bool = False):
        self.keep_logits, self.temperature, self.hard = keep_logits, temperature, hard
        super().__init__(keep_logits.shape, validate_args=False)

    def rsample(
        self, sample_shape: torch.Size | list[int] | tuple[int, ...] = _SCALAR
    ) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        if self.hard:
            return torch.bernoulli(torch.sigmoid(self.keep_logits).expand(shape))
        u = torch.rand(shape, dtype=self.keep_logits.dtype, device=self.keep_logits.device)
        u = u.clamp(1e-6, 1 - 1e-6)
        return torch.sigmoid((self.keep_logits + u.log() - (-u).log1p()) / self.temperature)

    def sample(
        self, sample_shape: torch.Size | list[int] | tuple[int, ...] = _SCALAR
    ) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def expand(
        self, batch_shape: torch.Size | list[int] | tuple[int, ...], _instance=None
    ) -> BernoulliGate:
        shape = torch.Size(batch_shape)
        return BernoulliGate(self.keep_logits.expand(shape), self.temperature, self.hard)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(
            self.keep_logits.expand(value.shape), value.round(), reduction="none"
        )

    def entropy(self) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            self.keep_logits, torch.sigmoid(self.keep_logits), reduction="none"
        )


class CategoricalGate(TorchDistribution):
    """One op per edge as a one-hot vector, relaxed by the Gumbel-softmax (categorical Concrete)."""

    arg_constraints = {"logits": constraints.real_vector}
    support = constraints.simplex
    has_rsample = True

    def __init__(
        self,
        logits: torch.Tensor,
        temperature: float = 1.0,
        hard: bool = False,
        shared: bool = False,
    ):
        self.logits = logits - logits.logsumexp(-1, keepdim=True)
        self.temperature, self.hard, self.shared = temperature, hard, shared
        super().__init__(logits.shape[:-1], logits.shape[-1:], validate_args=False)

    def rsample(
        self, sample_shape: torch.Size | list[int] | tuple[int, ...] = _SCALAR
    ) -> torch.Tensor:
        """A relaxed one-hot draw per example; exact with ``hard``; with ``hard`` and ``shared``
        one exact draw for the whole leading (example) dimension: one path per batch, whose
        rows each still follow q, so the batch's loss stays unbiased for Eq. 15."""
        logits = self.logits.expand(self._extended_shape(sample_shape))
        if self.hard and self.shared:
            index = torch.distributions.Categorical(logits=logits[:1]).sample()
            return F.one_hot(index, logits.shape[-1]).to(logits.dtype).expand(logits.shape)
        if self.hard:
            index = torch.distributions.Categorical(logits=logits).sample()
            return F.one_hot(index, logits.shape[-1]).to(logits.dtype)
        return F.gumbel_softmax(logits, tau=self.temperature)

    def sample(
        self, sample_shape: torch.Size | list[int] | tuple[int, ...] = _SCALAR
    ) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def expand(
        self, batch_shape: torch.Size | list[int] | tuple[int, ...], _instance=None
    ) -> CategoricalGate:
        shape = torch.Size(batch_shape) + self.event_shape
        return CategoricalGate(self.logits.expand(shape), self.temperature, self.hard, self.shared)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        index = value.argmax(-1, keepdim=True)
        return self.logits.expand(value.shape).gather(-1, index).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1)


@register_kl(BernoulliGate, BernoulliGate)
def _kl_bernoulli_gates(q: BernoulliGate, p: BernoulliGate) -> torch.Tensor:
    return kl_divergence(
        torch.distributions.Bernoulli(logits=q.keep_logits),
        torch.distributions.Bernoulli(logits=p.keep_logits),
    )


@register_kl(CategoricalGate, CategoricalGate)
def _kl_categorical_gates(q: CategoricalGate, p: CategoricalGate) -> torch.Tensor:
    return (q.logits.exp() * (q.logits - p.logits)).sum(-1)


@dataclass(frozen=True)
class GateLayout:
    """How a space's gate tensor is laid out and parametrised.

    ``kind`` is "bernoulli" (one keep gate per input channel, one logit per group of channels,
    ``group_of[k]`` naming channel k's group) or "categorical" (one op per edge, ``shape`` =
    (edges, ops), one logit per (edge, op)).
    """

    kind: str
    shape: tuple[int, ...]
    group_of: torch.Tensor | None = None
    _group_of_on: dict = field(default_factory=dict, compare=False, repr=False)

    def expand_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-gate-element logits from the guide's parameters (shared within a group)."""
        if self.kind != "bernoulli":
            return logits
        index = self._group_of_on.get(logits.device)
        if index is None:  # copied once per device: a copy per step would stall a GPU each time
            index = self._group_of_on[logits.device] = cast(torch.Tensor, self.group_of).to(
                logits.device
            )
        return logits[index]

    def distribution(
        self, logits: torch.Tensor, batch: int, temperature: float, hard: bool, shared: bool = False
    ) -> TorchDistribution:
        """The gate distribution for ``batch`` draws, as one vectorised site: independent, or
        (categorical, exact, ``shared``) one path for the whole batch."""
        logits = self.expand_logits(logits).expand(batch, *self.shape)
        if self.kind == "bernoulli":
            return BernoulliGate(logits, temperature, hard).to_event(1)
        return CategoricalGate(logits, temperature, hard, shared).to_event(1)

    def prior(
        self,
        batch: int,
        device: torch.device,
        dtype: torch.dtype,
        logits: torch.Tensor | None = None,
    ) -> TorchDistribution:
        """The architecture prior: Bernoulli(1/2) keep gates, or uniform over ops (METHOD.md);
        with ``logits`` (one per gate element, ``shape``) a cost-aware prior instead."""
        if logits is None:
            logits = torch.zeros(self.shape, device=device, dtype=dtype)
        else:
            logits = logits.to(device=device, dtype=dtype)
        if self.kind == "bernoulli":
            return BernoulliGate(logits.expand(batch, *self.shape)).to_event(1)
        return CategoricalGate(logits.expand(batch, *self.shape)).to_event(1)
