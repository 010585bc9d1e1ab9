"""NAS-Bench-201: a cell of 4 nodes and 6 edges, one of 5 ops per edge, stacked in 3 stages."""

from __future__ import annotations

from typing import Any

from bayesnas.spaces.base import Space, SpaceOption, TrainRecipe
from bayesnas.spaces.nb201.cell import edges_of, from_string, read_cell
from bayesnas.spaces.nb201.network import NB201Net, nb201
from bayesnas.spaces.nb201.subnet import NB201SubNet


def _sample_defect(row: dict[str, Any]) -> str | None:
    try:
        from_string(row["architecture"])
    except ValueError as exc:
        return f"architecture {row['architecture']!r} is not a NAS-Bench-201 cell ({exc})"
    return None


SPACE = Space(
    name="nb201",
    factory=nb201,
    network=NB201Net,
    options=(
        SpaceOption("channels", "nb201: channels C of the first stage.", maximum=1024),
        SpaceOption("cells", "nb201: cells N per stage.", maximum=64),
    ),
    subnet=lambda: NB201SubNet,
    figure="cell",
    sample_defect=_sample_defect,
    arch_priors=("uniform", "zero-cost"),
    drawing=edges_of,
    search_extras=("aux_skip", "skip_dropout"),
    recipe=TrainRecipe(
        notation="NAS-Bench-201 cell",
        reads=lambda text: text.lstrip().startswith("|"),
        parse=read_cell,
        size={"channels": 16, "cells": 5},  # NAS-Bench-201's networks
        # NAS-Bench-201's training protocol (Dong & Yang, 2020)
        presets={"nb201": {"epochs": 200, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4}},
    ),
)
