"""Ranking: identical draws grouped once, the best-of-k curve, FLOPs of a draw."""

from __future__ import annotations

import math

import torch

from bayesnas.selection.rank import best_of_k, distinct, flops_per_image
from bayesnas.spaces import create_space
from bayesnas.spaces.nb201.cell import OPS, from_string

ALL_CONV = "+".join("|" + "|".join(f"nor_conv_3x3~{i}" for i in range(n)) + "|" for n in (1, 2, 3))
DEAD_EDGE = "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # node 1 unused
SAME = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"


def one_hot(text: str) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(from_string(text)), len(OPS)).float()


def test_best_of_k_by_hand() -> None:
    assert best_of_k([(0, 0.5), (2, 0.7), (1, 0.4)], 4) == [0.5, 0.5, 0.7, 0.7]
    assert best_of_k([(1, 0.3)], 2) == [-math.inf, 0.3]


def test_draws_that_compute_the_same_function_are_one_candidate() -> None:
    net = create_space("nb201", channels=4, cells=1)
    archs = torch.stack([one_hot(DEAD_EDGE), one_hot(ALL_CONV), one_hot(SAME), one_hot(ALL_CONV)])
    candidates = distinct(net, archs, torch.zeros(4))
    assert [c.draws for c in candidates] == [[0, 2], [1, 3]]


def test_a_smaller_cell_costs_fewer_flops() -> None:
    net = create_space("nb201", channels=4, cells=1).eval()
    example = torch.randn(1, 3, 16, 16)
    big = flops_per_image(net, one_hot(ALL_CONV), example)
    small = flops_per_image(net, one_hot(DEAD_EDGE), example)
    assert 0 < small < big
