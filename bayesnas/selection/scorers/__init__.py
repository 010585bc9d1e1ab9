"""How sampled candidates are ranked: one ``Scorer`` per module, chosen by ``sample --score``.

Every candidate is first evaluated with its inherited weights (``rank.evaluate_candidates``:
val_acc, val_nll, size), which ``sample`` always reports. A scorer then sets
``metrics["score"]`` (higher is better); ``ranking_key`` is the one ordering of candidates.
Adding a scorer is one module with a ``Scorer`` subclass and one line in ``SCORERS``.
"""

from __future__ import annotations

from bayesnas.selection.scorers.base import Scorer, ScoringContext, ranking_key
from bayesnas.selection.scorers.combined import Combined
from bayesnas.selection.scorers.inherited import Inherited
from bayesnas.selection.scorers.log_prior import LogPosterior, LogPrior
from bayesnas.selection.scorers.zero_cost import ZeroCost

SCORERS: dict[str, type[Scorer]] = {
    scorer.name: scorer for scorer in (Inherited, ZeroCost, LogPrior, LogPosterior, Combined)
}

__all__ = ["SCORERS", "Scorer", "ScoringContext", "ranking_key"]
