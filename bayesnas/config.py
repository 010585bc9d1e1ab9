"""The search configuration: one frozen dataclass, presets, and validation of user values."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bayesnas.errors import UserError

MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit
CAPTURE_MODES = ("none", "compile", "cuda-graphs")  # --capture: see bayesnas/search/capture.py
FLOAT_FIELDS = (
    "lr", "gate_lr", "warmup", "tau", "tau_final", "init_drop", "prior_l2", "val_fraction",
)  # fmt: skip


def check_seed(seed: int) -> None:
    """Seeds outside [0, 2**32 - 1] are one line, not NumPy's traceback."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be a whole number in [0, {MAX_SEED}], got {seed}")


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search; saved as config.json and in every checkpoint."""

    dataset: str = "cifar10"
    space: str = "nb201"
    space_options: dict[str, int] = field(default_factory=dict)  # channels/cells, width/blocks
    sampler: str = "posterior"  # posterior: learn q(arch); uniform: single-path, q fixed uniform
    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025  # SGD, Nesterov momentum 0.9, cosine to 0 over all steps (per step)
    gate_lr: float = 0.025  # learning rate of the gate logits (the paper uses one lr for both)
    warmup: float = 0.0  # fraction of steps in which the gates stay frozen while weights train
    tau: float = 1.0  # Concrete temperature at the start ...
    tau_final: float = 1.0  # ... annealed linearly after the warm-up to this by the last step
    prune_below: float = 0.0  # after the warm-up, an op with q below this at an epoch end is cut
    warmup_draws: str = "example"  # exact draws in the warm-up: one per example, or per batch
    aux_skip: float = 0.0  # nb201: DARTS-'s auxiliary skip, this weight at q's start, linear to 0
    init_drop: float = 0.1  # initial drop probability p of every Bernoulli group (paper)
    prior_l2: float = 50.0  # l^2, the precision of the Gaussian weight prior (paper's "l2")
    kl_n: int | None = None  # N of Eq. 15; None: 10 x the search-train size (paper: 5e5 on CIFAR)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data_root: str | None = None
    val_fraction: float = 0.5  # held-out share of the training set (the test set is never used)
    train_size: int | None = None  # cap on search-train images (None: the whole split)
    val_size: int | None = None  # cap on validation images
    eval_size: int | None = 10000  # validation images scored after each epoch (all at the end)
    augmentation: dict[str, Any] | None = None  # pad, flip, cutout; None: the data set's defaults
    workers: int | None = None  # DataLoader workers (ImageNet)
    image_size: int | None = None  # ImageNet training crop (None: 224)
    checkpoint_minutes: float = 10.0  # also checkpoint mid-epoch this often
    sync_bn: bool = False  # under torchrun: BatchNorm statistics of the global batch, not the shard
    capture: str = "none"  # none | compile | cuda-graphs: the step's network calls compiled
    preset: str | None = None

    def with_updates(self, **changes: Any) -> SearchConfig:
        """A copy with ``changes`` applied (None values ignored), validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> SearchConfig:
        """Self, after checking every value; UserError names the first bad one."""
        for name in FLOAT_FIELDS:
            if not math.isfinite(getattr(self, name)):
                raise UserError(
                    f"--{name.replace('_', '-')} must be a finite number, got {getattr(self, name)}"
                )
        if math.isnan(self.checkpoint_minutes) or self.checkpoint_minutes < 0:
            raise UserError(
                "--checkpoint-minutes must be >= 0 (0: after every step), "
                f"got {self.checkpoint_minutes}"
            )
        check_seed(self.seed)
        positive = {"epochs": self.epochs, "batch_size": self.batch_size}
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        for name in ("lr", "tau", "tau_final", "prior_l2"):
            if not getattr(self, name) > 0:
                raise UserError(
                    f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}"
                )
        if self.gate_lr < 0:
            raise UserError(f"--gate-lr must be >= 0, got {self.gate_lr}")
        if not 0 <= self.prune_below < 0.2:
            raise UserError(f"--prune-below must lie in [0, 0.2), got {self.prune_below}")
        if self.warmup_draws not in ("example", "batch"):
            raise UserError(f"--warmup-draws must be example or batch, got {self.warmup_draws!r}")
        if self.capture not in CAPTURE_MODES:
            raise UserError(f"--capture must be none, compile or cuda-graphs, got {self.capture!r}")
        if self.capture == "cuda-graphs" and self.device == "cpu":
            raise UserError(
                "--capture cuda-graphs needs a CUDA device: use --capture compile on CPU"
            )
        if not 0 <= self.aux_skip <= 1:
            raise UserError(f"--aux-skip must lie in [0, 1], got {self.aux_skip}")
        if not 0 <= self.warmup < 1:
            raise UserError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if not 0 < self.init_drop < 1:
            raise UserError(f"--init-drop must lie in (0, 1), got {self.init_drop}")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val-fraction must lie in (0, 1), got {self.val_fraction}")
        for name in ("kl_n", "train_size", "val_size", "eval_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.sampler not in ("posterior", "uniform"):
            raise UserError(f"--sampler must be posterior or uniform, got {self.sampler!r}")
        from bayesnas.data import DATASETS
        from bayesnas.spaces import get_space

        space = get_space(self.space)  # raises the UserError that names the known spaces
        if self.image_size is not None and self.image_size < 8:
            raise UserError(f"--image-size must be at least 8, got {self.image_size}")
        if self.dataset not in DATASETS:
            raise UserError(
                f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}"
            )
        allowed = space.option_names
        minimum = {option.name: option.minimum for option in space.options}
        for name, value in self.space_options.items():
            if name not in allowed:
                raise UserError(
                    f"--{name} does not apply to space {self.space!r} (it takes {allowed})"
                )
            if value < 1:
                raise UserError(f"--{name} must be at least 1, got {value}")
        for name, value in self.space_options.items():  # the space's own lower bounds
            if value < minimum[name]:
                raise UserError(f"--{name} must be at least {minimum[name]}, got {value}")
        self._check_augmentation()
        return self

    def _check_augmentation(self) -> None:
        """Crop padding and cutout no larger than the image (ImageNet: its training crop)."""
        from bayesnas.data import dataset_info

        size = self.image_size or dataset_info(self.dataset).image_size
        if size == 0:  # a user's image folder: its size is read from the images at load time
            return
        flags = {"pad": "--crop-pad", "cutout": "--cutout"}
        for key, value in (self.augmentation or {}).items():
            if key in flags and isinstance(value, int) and value > size:
                raise UserError(
                    f"{flags[key]} {value} is larger than the {size}-pixel images of "
                    f"{self.dataset}; use at most {size}"
                )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"configuration has unknown fields {sorted(unknown)}: newer bayesnas?")
        return cls(**data)


# What each preset is for; `bayesnas search --help` prints these lines with the values.
PRESET_PURPOSE = {
    "quick": "a few minutes on a laptop CPU, any data set (Fashion-MNIST by default)",
    "cpu": "the CIFAR-10 search for a 2-core CPU: at most 30 minutes",
    "bench": "NAS-Bench-201's search setting (C=16, N=5, 50 epochs, 25k/25k) for GPUs",
    "paper": "the PGNAS paper's SupNet-M recipe (1800 epochs: GPU-days)",
    "paper-mi": "the PGNAS paper's SupNet-MI recipe: width 160 (72.7 M parameters), l2 150",
}

# Sizes in a preset are caps: on a data set with fewer examples the split takes what there is.
PRESETS: dict[str, dict[str, Any]] = {
    # a small NB201 net on a slice of the data; a fifth of the steps warm the weights up on
    # exact draws, then q learns from trained weights (docs/architecture.md, "What decides q";
    # the values chosen among four measured on Fashion-MNIST, docs/benchmarks.md)
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
    ),
    # CIFAR-10 on a 2-core CPU: the same net, 10 epochs of 25k with the first half warm-up
    "cpu": dict(
        dataset="cifar10",
        space="nb201",
        space_options={"channels": 8, "cells": 1},
        epochs=10,
        batch_size=128,
        lr=0.1,
        gate_lr=0.5,
        warmup=0.5,
        tau=1.0,
        tau_final=0.3,
        prune_below=0.01,
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
    # weights warm up for 15 of 50 epochs before q moves (DrNAS waits 10 of 50)
    "bench": dict(
        dataset="cifar10",
        space="nb201",
        space_options={"channels": 16, "cells": 5},
        epochs=50,
        batch_size=64,
        lr=0.025,
        gate_lr=0.1,
        warmup=0.3,
        tau=1.0,
        tau_final=0.3,
        prune_below=0.01,
        train_size=25000,
        val_size=25000,
        augmentation={"pad": 4, "flip": True, "cutout": 0},
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


def build_config(preset: str | None, **overrides: Any) -> SearchConfig:
    """Defaults, then the preset, then the user's explicit values (None means unset)."""
    base = SearchConfig()
    if preset is not None:
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        values = PRESETS[preset] | _capped_sizes(PRESETS[preset], overrides)
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
