"""`bayesnas search`'s options for the architecture prior and what q learns from
(bayesnas/priors/, docs/architecture.md "The prior" and "The likelihood's weight")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from bayesnas.cli.options import space_option_table
from bayesnas.config.search import (
    ARCH_PRIORS,
    GATE_DATA,
    MAX_BATCH,
    MAX_PRIOR_REPEATS,
    MAX_PRIOR_STRENGTH,
    MAX_TEMPERATURE,
    PRIOR_PROXIES,
)

PRIOR_OPTIONS = [
    click.option(
        "--arch-prior",
        type=click.Choice(ARCH_PRIORS),
        help="Prior over architectures: uniform (the paper's), or zero-cost: per-(edge, op) "
        "evidence from training-free removal scores on fresh super-networks (seconds), which q "
        "also starts from (nb201, darts: ops and each node's two inputs).",
    ),
    click.option(
        "--prior-strength",
        type=click.FloatRange(0, MAX_PRIOR_STRENGTH),
        help="Zero-cost prior logits = this x each edge's z-scored evidence; 0 = flat.",
    ),
    click.option(
        "--prior-proxy", type=click.Choice(PRIOR_PROXIES), help="Training-free proxy of the prior."
    ),
    click.option(
        "--prior-repeats",
        type=click.IntRange(1, MAX_PRIOR_REPEATS),
        help="Fresh initialisations the zero-cost evidence is averaged over (own batch and order).",
    ),
    click.option(
        "--prior-batch", type=click.IntRange(1, MAX_BATCH), help="Images per proxy evaluation."
    ),
    click.option(
        "--prior-cells",
        type=click.IntRange(1, space_option_table()["cells"].maximum),
        help="Cells of the fresh networks the evidence is read on (nb201: per stage; darts: in "
        "all), e.g. the depth the found cell will be trained at [the search's --cells].",
    ),
    click.option(
        "--likelihood-temperature",
        type=click.FloatRange(1, MAX_TEMPERATURE),
        help="T of the tempered likelihood: q(arch) ~ p(arch) p(data | arch)^(1/T), i.e. the "
        "architecture KL weighted T/N instead of 1/N; 1 = Eq. 15.",
    ),
    click.option(
        "--gate-data",
        type=click.Choice(GATE_DATA),
        help="Images q's steps see: train (the weights' batches, Eq. 15) or held-out (validation "
        "images beyond --val-size, which neither the weights nor the ranking see; DARTS-style "
        "alternation after the warm-up).",
    ),
]


def prior_flags(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the prior's options to ``command``, in the order `--help` lists them."""
    for option in reversed(PRIOR_OPTIONS):
        command = option(command)
    return command
