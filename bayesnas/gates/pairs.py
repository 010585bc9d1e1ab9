"""Pair gates: per cell node, two distinct inputs and one op per kept input (DARTS genotypes).

Every exact draw is a valid DARTS genotype. Per cell kind and intermediate node with n inputs,
the kept pair {a, b} is drawn with probability proportional to exp(s_a + s_b): independent
keep gates with logits s per incoming edge, conditioned on exactly two being kept. Each kept
edge then draws one op from a softmax over the 7 real ops (never 'none'). log q of a draw and
KL(q || p) are exact (a node has at most 10 pairs, so pairs are enumerated).

The gate value is DARTS's alpha shape ``[cell kinds, edges, ops]``: one-hot per edge, on 'none'
(column 0) where the edge is dropped. The relaxation (Eq. 16's role) draws the pair and the op by
Gumbel-softmax: an edge's keep weight is the relaxed mass of the pairs containing it, its op
weights keep x relaxed op; column 0 takes the rest. Parameters, same shape: column 0 holds the
edge's keep logit s, columns 1.. the op logits (docs/architecture.md, "DARTS genotypes as gates").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution, constraints
from torch.distributions import register_kl

from bayesnas.gates import GateLayout

_SCALAR = torch.Size()


@dataclass(frozen=True)
class PairStructure:
    """Which edges enter which node, and every unordered pair of them, for nodes with
    ``inputs[j]`` incoming edges (edges numbered node by node, inputs in order)."""

    inputs: tuple[int, ...]
    pairs: list[torch.Tensor] = field(init=False, compare=False)  # per node: [pairs, 2] edges
    incidence: list[torch.Tensor] = field(init=False, compare=False)  # per node: [pairs, n]

    def __post_init__(self) -> None:
        pairs, incidence, offset = [], [], 0
        for n in self.inputs:
            combos = torch.tensor(list(itertools.combinations(range(n), 2)))
            pairs.append(combos + offset)
            incidence.append(F.one_hot(combos, n).sum(1).float())
            offset += n
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "incidence", incidence)

    @property
    def edges(self) -> int:
        return sum(self.inputs)

    def node_slices(self) -> list[slice]:
        starts = list(itertools.accumulate(self.inputs, initial=0))
        return [slice(a, b) for a, b in zip(starts, starts[1:], strict=False)]


class PairGate(TorchDistribution):
    """q(genotype) of the module docstring; ``logits`` are ``[..., kinds, edges, 1 + ops]``."""

    arg_constraints = {"logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(
        self,
        logits: torch.Tensor,
        structure: PairStructure,
        temperature: float = 1.0,
        hard: bool = False,
        shared: bool = False,
    ):
        self.logits, self.structure = logits, structure
        self.temperature, self.hard, self.shared = temperature, hard, shared
        super().__init__(logits.shape[:-3], logits.shape[-3:], validate_args=False)

    def pair_log_probs(self) -> list[torch.Tensor]:
        """Per node: log q of each of its pairs, ``[..., kinds, pairs]``."""
        keep = self.logits[..., 0]
        return [
            (keep[..., pairs[:, 0]] + keep[..., pairs[:, 1]]).log_softmax(-1)
            for pairs in self.structure.pairs
        ]

    def op_log_probs(self) -> torch.Tensor:
        """log q(op | edge kept), ``[..., kinds, edges, ops]`` (no 'none')."""
        return self.logits[..., 1:].log_softmax(-1)

    def keep_probs(self) -> torch.Tensor:
        """Marginal probability that each edge is kept, ``[..., kinds, edges]``."""
        incidence = self._on_device(self.structure.incidence)
        return torch.cat(
            [lp.exp() @ m for lp, m in zip(self.pair_log_probs(), incidence, strict=True)], -1
        )

    def _on_device(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.to(self.logits.device, self.logits.dtype) for t in tensors]

    def rsample(
        self, sample_shape: torch.Size | list[int] | tuple[int, ...] = _SCALAR
    ) -> torch.Tensor:
        """Relaxed draws per example; exact with ``hard`` (with ``shared``: one exact draw for
        the whole leading dimension, whose rows each still follow q)."""
        shape = self._extended_shape(torch.Size(sample_shape))
        logits = self.logits.expand(shape)
        if self.hard and self.shared:
            return PairGate(logits[:1], self.structure, hard=True).rsample().expand(shape)
        gate = PairGate(logits, self.structure, self.temperature)
        incidence = self._on_device(self.structure.incidence)
        op_logits = gate.op_log_probs()
        if self.hard:
            pairs = [
                F.one_hot(torch.distributions.Categorical(logits=lp).sample(), lp.shape[-1])
                for lp in gate.pair_log_probs()
            ]
            index = torch.distributions.Categorical(logits=op_logits).sample()
            ops = F.one_hot(index, op_logits.shape[-1]).to(logits.dtype)
        else:
            pairs = [F.gumbel_softmax(lp, tau=self.temperature) for lp in gate.pair_log_probs()]
            ops = F.gumbel_softmax(op_logits, tau=self.temperature)
        keep = torch.cat([p.to(m.dtype) @ m for p, m in zip(pairs, incidence, strict=True)], -1)
        return torch.cat([(1 - keep).unsqueeze(-1), keep.unsqueeze(-1) * ops], -1)

    def sample(
        self, sample_shape: torch.Size | list[int] | tuple[int, ...] = _SCALAR
    ) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)

    def expand(
        self, batch_shape: torch.Size | list[int] | tuple[int, ...], _instance=None
    ) -> PairGate:
        shape = torch.Size(batch_shape) + self.event_shape
        return PairGate(
            self.logits.expand(shape), self.structure, self.temperature, self.hard, self.shared
        )

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact log q of the genotype ``value`` rounds to: per node the pair with the most
        keep weight, per kept edge its top op."""
        kept = 1 - value[..., 0]
        total = torch.zeros(value.shape[:-2], dtype=self.logits.dtype, device=value.device)
        chosen = []
        incidence = self._on_device(self.structure.incidence)
        slices = self.structure.node_slices()
        for lp, m, s in zip(self.pair_log_probs(), incidence, slices, strict=True):
            pair = (kept[..., s].to(m.dtype) @ m.T).argmax(-1, keepdim=True)
            total = total + lp.expand(*kept.shape[:-1], lp.shape[-1]).gather(-1, pair).squeeze(-1)
            chosen.append(m[pair.squeeze(-1)])
        mask = torch.cat(chosen, -1)
        op = value[..., 1:].argmax(-1, keepdim=True)
        op_lp = self.op_log_probs().expand(value[..., 1:].shape).gather(-1, op).squeeze(-1)
        return (total + (mask * op_lp).sum(-1)).sum(-1)


@register_kl(PairGate, PairGate)
def _kl_pair_gates(q: PairGate, p: PairGate) -> torch.Tensor:
    """Exact KL: per node the pairs' KL, plus each edge's op KL weighted by q(edge kept)."""
    pairs = sum(
        (a.exp() * (a - b)).sum(-1)
        for a, b in zip(q.pair_log_probs(), p.pair_log_probs(), strict=True)
    )
    q_ops, p_ops = q.op_log_probs(), p.op_log_probs()
    ops = (q.keep_probs() * (q_ops.exp() * (q_ops - p_ops)).sum(-1)).sum(-1)
    return (pairs + ops).sum(-1)


@dataclass(frozen=True)
class PairLayout(GateLayout):
    """The gate layout of a DARTS-style cell space: ``kinds`` cell kinds with nodes of
    ``structure.inputs`` inputs each and ``ops`` op columns ('none' first)."""

    kind: str = "pairs"
    shape: tuple[int, ...] = ()
    structure: PairStructure = PairStructure(())

    def distribution(
        self, logits: torch.Tensor, batch: int, temperature: float, hard: bool, shared: bool = False
    ) -> TorchDistribution:
        """q for ``batch`` draws (one site; relaxed, exact, or one exact path per batch)."""
        logits = logits.expand(batch, *self.shape)
        return PairGate(logits, self.structure, temperature, hard, shared)

    def prior(
        self,
        batch: int,
        device: torch.device,
        dtype: torch.dtype,
        logits: torch.Tensor | None = None,
    ) -> TorchDistribution:
        """Uniform over genotypes (every pair of a node and every op equally likely), or the pair
        gate of ``logits`` in q's parametrisation (column 0 keep logits, 1.. op logits), e.g.
        the zero-cost prior's."""
        if logits is None:
            logits = torch.zeros(self.shape, device=device, dtype=dtype)
        logits = logits.to(device, dtype)
        return PairGate(logits.expand(batch, *self.shape), self.structure)
