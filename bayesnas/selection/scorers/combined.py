"""Both kinds of evidence at once: the sum of the candidates' z-scores of inherited accuracy
(what trained shared weights say) and of the zero-cost score (what initialisation says)."""

from __future__ import annotations

from bayesnas.selection.rank import Candidate
from bayesnas.selection.scorers.base import Scorer, ScoringContext, z_scores
from bayesnas.selection.scorers.zero_cost import zero_cost_scores


class Combined(Scorer):
    name = "combined"
    help = "z(inherited accuracy) + z(zero-cost score) over the candidates"

    def score(self, context: ScoringContext, candidates: list[Candidate]) -> None:
        proxy = zero_cost_scores(context, candidates)
        accuracy = [c.metrics["val_acc"] for c in candidates]
        for candidate, value, z_acc, z_proxy in zip(
            candidates, proxy, z_scores(accuracy), z_scores(proxy), strict=True
        ):
            candidate.metrics["zero_cost"] = value
            candidate.metrics["score"] = z_acc + z_proxy
