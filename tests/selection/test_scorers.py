"""The scorers' shared parts: z-scores over candidates, with proxies that can be -inf."""

import math

from bayesnas.selection.scorers.base import z_scores


def test_z_scores_standardise_and_rank_minus_infinity_last():
    assert z_scores([1.0, 2.0, 3.0]) == [-math.sqrt(1.5), 0.0, math.sqrt(1.5)]
    scores = z_scores([float("-inf"), 1.0, 3.0])  # before: NaN for every candidate
    assert all(math.isfinite(z) for z in scores) and scores == sorted(scores)
    assert z_scores([2.0, 2.0]) == [0.0, 0.0]
