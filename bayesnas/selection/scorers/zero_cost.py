"""Training-free score of each candidate's own sub-network: the proxy of the zero-cost prior
(NASWOT) on fresh initialisations, summed over batches of the training split, as Zero-Cost-PT
validates its proposals. Needs no trained weights, so it also ranks a prior-only run. The
batches are the first ones of the training split, unaugmented, as the prior's."""

from __future__ import annotations

import functools

import torch

from bayesnas import progress
from bayesnas.priors import fresh_network
from bayesnas.priors.proxies import get_proxy
from bayesnas.selection.rank import Candidate
from bayesnas.selection.scorers.base import Scorer, ScoringContext

SEED_OFFSET = 7919  # fresh networks other than the prior's, for the same search seed


def zero_cost_scores(context: ScoringContext, candidates: list[Candidate]) -> list[float]:
    """The mean proxy score of each candidate over the run's prior repeats (a fresh network
    and a batch each); every candidate sees the same networks and batches."""
    posterior = context.posterior
    config, data = posterior.config, posterior.payload["dataset"]
    proxy = get_proxy(config.prior_proxy)
    size = min(config.prior_batch, len(context.train_split))
    batches = []
    for images, _ in context.train_split.eval_batches(size):
        batches.append(images.to(context.device))
        if len(batches) == config.prior_repeats:
            break
    totals = [0.0] * len(candidates)
    bar = progress.bar(len(batches), "zero-cost scores", "init")
    with torch.random.fork_rng(devices=[]):
        for repeat, images in enumerate(batches):
            torch.manual_seed(context.seed * 1009 + repeat + SEED_OFFSET)
            net = fresh_network(config, data["num_classes"], data["channels"], images.device)
            for index, candidate in enumerate(candidates):
                arch = candidate.arch.to(images.device)
                forward = functools.partial(net.forward_architecture, arch=arch)
                totals[index] += proxy(forward, net, images, False)
            bar.update(1)
    bar.close()
    return [total / max(1, len(batches)) for total in totals]


class ZeroCost(Scorer):
    name = "zero-cost"
    help = "training-free proxy (NASWOT) of each candidate's sub-network at initialisation"

    def score(self, context: ScoringContext, candidates: list[Candidate]) -> None:
        for candidate, value in zip(candidates, zero_cost_scores(context, candidates), strict=True):
            candidate.metrics["zero_cost"] = value
            candidate.metrics["score"] = value
