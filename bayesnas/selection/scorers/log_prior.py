"""Rank by how probable an architecture is: under the prior, or under q."""

from __future__ import annotations

import torch

from bayesnas.selection.rank import Candidate
from bayesnas.selection.scorers.base import Scorer, ScoringContext


class LogPrior(Scorer):
    name = "log-prior"
    help = "log p(architecture) under the search's prior (zero-cost evidence, or flat)"

    def score(self, context: ScoringContext, candidates: list[Candidate]) -> None:
        model = context.posterior.program.model
        prior = model.arch_prior(1, torch.device("cpu"))
        for candidate in candidates:
            arch = candidate.arch.cpu().unsqueeze(0)
            value = float(prior.log_prob(arch.to(torch.float32)))
            candidate.metrics["log_prior"] = value
            candidate.metrics["score"] = value


class LogPosterior(Scorer):
    name = "log-q"
    help = "log q(architecture) under the learned posterior"

    def score(self, context: ScoringContext, candidates: list[Candidate]) -> None:
        for candidate in candidates:
            candidate.metrics["score"] = candidate.log_q
