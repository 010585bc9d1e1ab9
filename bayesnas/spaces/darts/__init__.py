"""DARTS: normal and reduction cells of 4 nodes, 2 inputs each from 8 ops (Liu et al., 2019)."""

from __future__ import annotations

from typing import Any

from bayesnas.spaces.base import Space, SpaceOption, TrainRecipe
from bayesnas.spaces.darts.genotype import parse_genotype
from bayesnas.spaces.darts.network import UNMEASURED_PRIOR, DartsSearchNet, darts
from bayesnas.spaces.darts.subnet import DartsNetwork


def _sample_defect(row: dict[str, Any]) -> str | None:
    try:
        parse_genotype(row["architecture"])
    except ValueError as exc:
        return f"architecture {row['architecture']!r} is not a DARTS genotype ({exc})"
    return None


def _read_genotype(text: str) -> tuple[str, dict[str, str]]:
    """The canonical text of a genotype, which is also what its network keeps."""
    canonical = str(parse_genotype(text))
    return canonical, {"genotype": canonical}


SPACE = Space(
    name="darts",
    factory=darts,
    network=DartsSearchNet,
    options=(
        SpaceOption(
            "channels", "darts: channels C of the first cells (the stem has 3C).", maximum=1024
        ),
        SpaceOption(
            "cells", "darts: cells, reduction cells at 1/3 and 2/3 of the depth.", maximum=64
        ),
    ),
    subnet=lambda: DartsNetwork,
    figure="genotype",
    sample_defect=_sample_defect,
    presets={
        # a few CPU minutes (measured in docs/benchmarks.md): 5 cells at C=4 on 2k images; the
        # warm-up trains one path per batch, then q learns from the relaxed mixture
        "quick": {
            "space_options": {"channels": 4, "cells": 5},
            "epochs": 2,
            "batch_size": 64,
            "lr": 0.05,
            "warmup": 0.5,
            "warmup_draws": "batch",
            "tau_final": 0.3,
            "train_size": 2048,
            "val_size": 1024,
            "eval_size": 1024,
            **UNMEASURED_PRIOR,
        },
        # nb201's cpu recipe before it went three cells deep (unmeasured on darts)
        "cpu": {
            "space_options": {"channels": 8, "cells": 1},
            "epochs": 10,
            "gate_lr": 0.5,
            "warmup": 0.5,
            "warmup_draws": "relaxed",
            "tau_final": 0.3,
            "train_size": 25000,
            "augmentation": None,
            **UNMEASURED_PRIOR,
        },
        # DARTS's search setting: 8 cells, C=16, 50 epochs, batch 64, 25k/25k CIFAR-10
        "bench": {"space_options": {"channels": 16, "cells": 8}, **UNMEASURED_PRIOR},
    },
    arch_priors=("uniform", "zero-cost"),
    drawing=parse_genotype,
    recipe=TrainRecipe(
        notation="DARTS genotype",
        reads=lambda text: text.lstrip().startswith("Genotype"),
        parse=_read_genotype,
        malformed="malformed --arch genotype",
        size={"channels": 36, "cells": 20},  # DARTS's CIFAR-10 evaluation network
        # DARTS's CIFAR-10 protocol for a genotype's evaluation network (Liu et al., 2019)
        presets={
            "darts": {
                "epochs": 600,
                "batch_size": 96,
                "lr": 0.025,
                "weight_decay": 3e-4,
                "cutout": 16,
                "drop_path": 0.2,
                "auxiliary_weight": 0.4,
                "grad_clip": 5.0,
            }
        },
        extras=("drop_path", "auxiliary_weight"),  # its evaluation networks' training extras
        # the auxiliary head is trained, then removed from the export
        subnet_options=lambda s: {"auxiliary": True} if s.get("auxiliary_weight", 0) > 0 else {},
    ),
)
