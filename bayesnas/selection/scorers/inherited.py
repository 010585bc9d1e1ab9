"""Validation accuracy with the inherited (paired) weights: the paper's ranking."""

from __future__ import annotations

from bayesnas.selection.rank import Candidate
from bayesnas.selection.scorers.base import Scorer, ScoringContext


class Inherited(Scorer):
    name = "inherited"
    help = (
        "validation accuracy with the paired weights (the paper's; with --bn recalibrate or "
        "--fine-tune-steps: after that)"
    )

    def score(self, context: ScoringContext, candidates: list[Candidate]) -> None:
        for candidate in candidates:
            candidate.metrics["score"] = candidate.metrics["val_acc"]
