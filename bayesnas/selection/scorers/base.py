"""The scorer interface and the ranking key shared by every scorer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from bayesnas.data.batches import Batches
from bayesnas.selection.posterior import Posterior
from bayesnas.selection.rank import Candidate


@dataclass
class ScoringContext:
    """What a scorer may read: the run's posterior, its validation batches, its training split
    (for batches of the size a scorer needs) and the sampling seed."""

    posterior: Posterior
    val_batches: Callable[[], Iterator]
    train_split: Batches
    device: torch.device
    seed: int


class Scorer(ABC):
    """Sets ``metrics["score"]`` (higher is better) of candidates already evaluated with their
    inherited weights; may add metrics of its own (shown in samples.jsonl)."""

    name: str
    help: str

    @abstractmethod
    def score(self, context: ScoringContext, candidates: list[Candidate]) -> None:
        """Fill ``metrics["score"]`` of every candidate."""


def ranking_key(candidate: Candidate) -> tuple[float, float]:
    """Best first: the highest score, then the lowest validation NLL."""
    return (-candidate.metrics["score"], candidate.metrics["val_nll"])


def z_scores(values: list[float]) -> list[float]:
    """Values standardised over the candidates (all 0 when they do not vary); a -inf value (a
    proxy of a network that passes no signal) counts as one below the lowest finite one."""
    tensor = torch.tensor(values, dtype=torch.float64)
    finite = tensor.isfinite()
    if finite.any() and not finite.all():
        tensor = torch.where(finite, tensor, tensor[finite].min() - 1.0)
    spread = tensor.std(unbiased=False)
    if len(values) < 2 or not spread > 0:
        return [0.0] * len(values)
    return ((tensor - tensor.mean()) / spread).tolist()
