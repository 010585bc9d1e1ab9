"""Search presets (named recipes, sizes as caps) and ``build_config``: defaults, then the preset
and the space's own values over it, then the user's explicit values."""

from __future__ import annotations

import dataclasses
from typing import Any

from bayesnas.config.search import SearchConfig
from bayesnas.errors import UserError

# What each preset is for; `bayesnas search --help` prints these lines with the values.
PRESET_PURPOSE = {
    "quick": "a few minutes on a laptop CPU, any data set (Fashion-MNIST by default)",
    "cpu": "the CIFAR-10 search for a 2-core CPU: at most 30 minutes",
    "zero-cost": "no training: q is the zero-cost prior (about a minute on a CPU; untrained "
    "weights: train the export)",
    "bench": "NAS-Bench-201's search setting (C=16, N=5, 50 epochs, 25k/25k) for GPUs",
    "paper": "the PGNAS paper's SupNet-M recipe (1800 epochs: GPU-days)",
    "paper-mi": "the PGNAS paper's SupNet-MI recipe: width 160 (72.7 M parameters), l2 150",
}

# Sizes in a preset are caps: on a data set with fewer examples the split takes what there is.
PRESETS: dict[str, dict[str, Any]] = {
    # a small NB201 net on a slice of the data; a fifth of the steps warm the weights up on
    # exact draws, then q learns from trained weights (docs/architecture.md, "What decides q";
    # the values chosen among four measured on Fashion-MNIST, docs/benchmarks.md); the zero-cost
    # prior with the likelihood tempered 1000x: CIFAR-10 found cells 84.4-85.2 -> 90.19-90.20,
    # Fashion-MNIST unchanged (docs/benchmarks.md, "A prior from training-free evidence")
    "quick": dict(
        dataset="fashion-mnist",
        space="nb201",
        space_options={"channels": 8, "cells": 1},
        epochs=3,
        batch_size=128,
        lr=0.1,
        gate_lr=1.0,
        warmup=0.2,
        tau=1.0,
        tau_final=0.2,
        prune_below=0.01,
        train_size=25600,
        val_size=10000,
        eval_size=10000,
        augmentation={"pad": 0, "flip": False, "cutout": 0},  # three epochs: fit, do not regularise
        arch_prior="zero-cost",
        likelihood_temperature=1000.0,
    ),
    # CIFAR-10 on a 2-core CPU: quick's recipe on a super-network three cells deep per stage.
    # NAS-Bench-201 trains its cells five deep: one cell deep, the likelihood removed the skip
    # on 3<-0 that 139 of the 156 best cells keep (found cells 90.32 on average); three deep,
    # q keeps it (docs/benchmarks.md, "Search at depth"). About 15 minutes alone.
    "cpu": dict(
        dataset="cifar10",
        space="nb201",
        space_options={"channels": 8, "cells": 3},
        epochs=3,
        batch_size=128,
        lr=0.1,
        gate_lr=1.0,
        warmup=0.2,
        tau=1.0,
        tau_final=0.2,
        prune_below=0.01,
        train_size=25600,
        val_size=10000,
        eval_size=10000,
        augmentation={"pad": 0, "flip": False, "cutout": 0},
        arch_prior="zero-cost",
        likelihood_temperature=1000.0,
    ),
    # the prior alone: q = p(arch) from training-free evidence, no SVI (docs/benchmarks.md,
    # "A prior from training-free evidence": as good as the SVI presets on CIFAR-10, in minutes);
    # sample ranks its draws by the zero-cost score, and the exported weights are untrained
    "zero-cost": dict(
        dataset="cifar10",
        space="nb201",
        space_options={"channels": 8, "cells": 1},
        epochs=0,
        arch_prior="zero-cost",
        train_size=25000,
        val_size=10000,
        eval_size=10000,
    ),
    # METHOD.md's hyper-parameters: SupNet-M on CIFAR, 1800 epochs, tau 0.2, l2 50, N 5e5
    "paper": dict(
        space="resnet",
        space_options={"width": 96, "blocks": 4},
        epochs=1800,
        batch_size=128,
        lr=0.01,
        gate_lr=0.01,
        tau=0.2,
        tau_final=0.2,
        init_drop=0.1,
        prior_l2=50.0,
        kl_n=500_000,
    ),
    # METHOD.md's SupNet-MI: the paper's 72.7 M parameters are SupNet-M at width 160 (measured:
    # 72.70 M; twice the width, 192, would give 104.7 M), with l2 150 instead of 50
    "paper-mi": dict(
        space="resnet",
        space_options={"width": 160, "blocks": 4},
        epochs=1800,
        batch_size=128,
        lr=0.01,
        gate_lr=0.01,
        tau=0.2,
        tau_final=0.2,
        init_drop=0.1,
        prior_l2=150.0,
        kl_n=500_000,
    ),
    # the settings NAS-Bench-201 papers search with: C=16, N=5, 25k/25k CIFAR-10 split; the
    # weights warm up on the relaxed mixture for 15 of 50 epochs before q moves (DrNAS waits
    # 10 of 50); the prior and temperature of "cpu" (not yet measured on a GPU)
    "bench": dict(
        dataset="cifar10",
        space="nb201",
        space_options={"channels": 16, "cells": 5},
        epochs=50,
        batch_size=64,
        lr=0.025,
        gate_lr=0.1,
        warmup=0.3,
        warmup_draws="relaxed",
        tau=1.0,
        tau_final=0.3,
        prune_below=0.01,
        train_size=25000,
        val_size=25000,
        augmentation={"pad": 4, "flip": True, "cutout": 0},
        arch_prior="zero-cost",
        likelihood_temperature=1000.0,
    ),
}


def _capped_sizes(preset: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The preset's split sizes, cut to what the chosen data set's split can hold."""
    from bayesnas.data import DATASETS, count_images, dataset_info, split_sizes

    dataset = overrides.get("dataset") or preset.get("dataset") or SearchConfig.dataset
    if dataset not in DATASETS:
        return {}
    total = dataset_info(dataset).train_images
    if dataset == "folder" and overrides.get("data_root") is not None:
        total = count_images(overrides["data_root"])
    fraction = overrides.get("val_fraction") or preset.get("val_fraction", 0.5)
    if total is None or not 0 < fraction < 1:
        return {}
    room = split_sizes(total, fraction)
    return {k: min(preset[k], room[k]) for k in ("train_size", "val_size") if k in preset}


def _supported_prior(preset: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The paper's flat prior and Eq. 15's likelihood where the preset's prior does not apply
    to the chosen space (the zero-cost prior needs op gates per edge); a prior the user asks
    for is left to validation, which names the spaces it fits."""
    from bayesnas.spaces import lookup

    entry = lookup(overrides.get("space") or preset.get("space") or SearchConfig.space)
    prior = preset.get("arch_prior", SearchConfig.arch_prior)
    asked = overrides.get("arch_prior") is not None or preset.get("epochs") == 0  # the point
    if entry is None or prior in entry.arch_priors or asked:
        return {}
    return {"arch_prior": "uniform", "likelihood_temperature": 1.0}


def space_preset(space: str | None, preset: str) -> dict[str, Any]:
    """The values search space ``space`` sets over ``preset`` (its record's ``presets``)."""
    from bayesnas.spaces import lookup

    entry = lookup(space)
    own = entry.presets.get(preset, {}) if entry is not None else {}
    return {"space": space, **own} if own else {}


def build_config(preset: str | None, **overrides: Any) -> SearchConfig:
    """Defaults, then the preset, then the user's explicit values (None means unset)."""
    base = SearchConfig()
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        values = PRESETS[preset] | space_preset(overrides.get("space"), preset)
        values |= _capped_sizes(values, overrides)
        values |= _supported_prior(values, overrides)
        base = dataclasses.replace(base, preset=preset, **values)
    space_options = dict(base.space_options)
    if overrides.get("space") not in (None, base.space):
        space_options = {}
    space_options.update(
        {k: v for k, v in overrides.pop("space_options", {}).items() if v is not None}
    )
    augmentation = overrides.pop("augmentation", None)
    if augmentation is not None and base.augmentation is not None:
        augmentation = {**base.augmentation, **augmentation}
    return base.with_updates(space_options=space_options, augmentation=augmentation, **overrides)
