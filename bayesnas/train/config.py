"""What ``bayesnas train`` trains: the network, the data set and the presets' hyper-parameters.

The network is an export of a search (``export/rank-K/``, re-initialised or fine-tuned from its
inherited weights) or an architecture string (a NAS-Bench-201 cell or a DARTS genotype, see
``train_sources``); ``resolve_config`` turns the command line's options into one frozen
``TrainConfig``, saved in the training run's config.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayesnas.config import MAX_EPOCHS, check_seed
from bayesnas.config.search import MAX_BATCH, MAX_RATE
from bayesnas.data import DEFAULT_AUGMENTATION, dataset_info
from bayesnas.errors import UserError
from bayesnas.train.sources import (
    arch_fields,
    arch_recipe,
    arch_space,
    export_fields,
    recipe_spaces,
    search_config,
)

MODES = ("from-scratch", "fine-tune")
FINE_TUNE_PRESET = "finetune"  # the preset of --fine-tune when none is given
# Every preset: SGD with Nesterov momentum 0.9, lr cosine per step to 0, random crop and flip
# as the data set's default augmentation in data.py says (pad 4 and flips on CIFAR); cutout
# only where a preset names it. The spaces' training recipes add their papers' protocols.
DEFAULT_PRESET = "short"
GENERAL_PRESETS: dict[str, dict[str, Any]] = {
    # roughly 10 minutes for a C=8, N=1 cell on CIFAR-10's 50k images on an idle 2-core CPU,
    # even the costliest cell (all nor_conv_3x3); measured figures in docs/cli.md
    "short": {"epochs": 6, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4},
    # --fine-tune's default: a few gentle epochs from the inherited weights
    "finetune": {"epochs": 3, "batch_size": 128, "lr": 0.01, "weight_decay": 5e-4},
}


def presets() -> dict[str, dict[str, Any]]:
    """Every train preset: the general ones, then each registered space's recipe's."""
    found = dict(GENERAL_PRESETS)
    for space in recipe_spaces():
        found.update(arch_recipe(space).presets)
    return found


def space_extras() -> dict[str, str]:
    """TrainConfig field -> the space whose networks alone use it (e.g. drop-path)."""
    return {k: space for space in recipe_spaces() for k in arch_recipe(space).extras}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; saved in config.json and every checkpoint."""

    architecture: str  # the NAS-Bench-201 string, DARTS genotype, or the export's description
    space: str  # the search space the architecture belongs to
    space_config: dict[str, Any]  # that space's size: channels/cells or width/blocks, classes
    subnet: dict[str, Any]  # the network's spec for spaces.subnet.subnet_from_spec
    dataset: str
    mode: str = "from-scratch"  # from-scratch: fresh weights; fine-tune: the export's weights
    source: dict[str, Any] | None = None  # {"run", "rank", "export"} when taken from a search
    data_root: str | None = None
    preset: str = DEFAULT_PRESET  # the four defaults below are its values
    epochs: int = GENERAL_PRESETS[DEFAULT_PRESET]["epochs"]
    batch_size: int = GENERAL_PRESETS[DEFAULT_PRESET]["batch_size"]
    lr: float = GENERAL_PRESETS[DEFAULT_PRESET]["lr"]  # SGD, Nesterov 0.9, cosine to 0 per step
    weight_decay: float = GENERAL_PRESETS[DEFAULT_PRESET]["weight_decay"]
    augmentation: dict[str, Any] = dataclasses.field(default_factory=dict)  # pad, flip, cutout
    drop_path: float = 0.0  # darts: drop-path probability reached at the last epoch (linear)
    auxiliary_weight: float = 0.0  # darts: weight of the auxiliary head's loss (0: no head)
    grad_clip: float | None = None  # clip the gradient's norm to this (DARTS: 5)
    train_size: int | None = None  # use only the first this-many training images
    seed: int = 0
    device: str = "auto"

    def validated(self) -> TrainConfig:
        """Self, after checking the numbers a user gives; UserError names the first bad one."""
        for name in ("epochs", "batch_size", "train_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.epochs > MAX_EPOCHS:
            raise UserError(f"--epochs must be at most {MAX_EPOCHS}, got {self.epochs}")
        check_seed(self.seed)
        for name in ("lr", "weight_decay", "drop_path", "auxiliary_weight", "grad_clip"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise UserError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        if not 0 < self.lr <= MAX_RATE:
            raise UserError(f"--lr must lie in (0, {MAX_RATE:g}], got {self.lr}")
        if self.batch_size > MAX_BATCH:
            raise UserError(f"--batch-size must be at most {MAX_BATCH}, got {self.batch_size}")
        if self.weight_decay > 1:
            raise UserError(f"--weight-decay must be at most 1, got {self.weight_decay}")
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.weight_decay >= 0:
            raise UserError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.drop_path < 1:
            raise UserError(f"--drop-path must lie in [0, 1), got {self.drop_path}")
        if not self.auxiliary_weight >= 0:
            raise UserError(f"--auxiliary-weight must be >= 0, got {self.auxiliary_weight}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise UserError(f"--grad-clip must be > 0, got {self.grad_clip}")
        owners = space_extras()
        used = [k for k in owners if getattr(self, k) > 0 and owners[k] != self.space]
        if used:
            names = " and ".join("--" + k.replace("_", "-") for k in used)
            owner = owners[used[0]]
            raise UserError(
                f"{names} train {owner}'s networks only; this architecture is {self.space}'s: "
                f"pass a {arch_recipe(owner).notation} or a {owner} export, or another --preset"
            )
        if self.auxiliary_weight > 0 and self.mode == "fine-tune":
            raise UserError(
                "an export has no auxiliary head: --fine-tune trains without one "
                "(pass --auxiliary-weight 0)"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(**data)


def resolve_config(
    *,
    run: Path | None = None,
    rank: int | None = None,
    arch: str | None = None,
    from_scratch: bool = False,
    fine_tune: bool = False,
    preset: str | None = None,
    dataset: str | None = None,
    data_root: str | Path | None = None,
    channels: int | None = None,
    cells: int | None = None,
    cutout: int | None = None,
    **overrides: Any,
) -> TrainConfig:
    """What to train, from the command line's options: an export of ``run`` at ``rank`` or the
    architecture string ``arch``; then the preset, then explicit ``overrides`` (None: unset)."""
    from bayesnas.rundir import find_run

    if from_scratch and fine_tune:
        raise UserError("--from-scratch and --fine-tune exclude each other; pass one of them")
    mode = "fine-tune" if fine_tune else "from-scratch"
    if fine_tune and run is None:
        raise UserError("--fine-tune starts from a search's export: pass --run RUN (and --rank K)")
    if fine_tune and arch is not None:
        raise UserError("--fine-tune trains the export's own cell and weights; drop --arch")
    if arch is None and (channels, cells) != (None, None):
        raise UserError("--channels and --cells size an --arch network; an export's size is fixed")
    if arch is not None and rank is not None:
        raise UserError("--rank picks an export of --run; it does not apply with --arch")
    preset = preset or (FINE_TUNE_PRESET if fine_tune else TrainConfig.preset)
    known = presets()
    if preset not in known:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(known)}")
    if data_root is not None and not Path(data_root).expanduser().is_dir():
        raise UserError(f"--data-root {data_root} does not exist; pass the folder holding the data")
    if run is None and arch is None:
        try:
            run = find_run(None)
        except UserError:
            raise UserError(
                "nothing to train: pass --run RUN (a search with an export) or --arch STRING "
                "(a NAS-Bench-201 cell or a DARTS genotype); there is no search under ./runs"
            ) from None
    elif run is not None:
        run = find_run(run)
    searched = search_config(run) if run is not None else {}
    if data_root is not None:  # absolute, so that a resume from another folder finds it
        data_root = str(Path(data_root).expanduser().resolve())
    else:
        data_root = searched.get("data_root")
    if arch is not None:
        dataset = dataset or searched.get("dataset") or "cifar10"
        space = arch_space(arch)
        size = searched.get("space_options") if searched.get("space") == space else None
        size = {**arch_recipe(space).size, **(size or {})}
        given = {"channels": channels, "cells": cells}  # train's size flags
        size = {**size, **{k: v for k, v in given.items() if v is not None}}
        fields = arch_fields(arch, size, dataset_info(dataset))
        source = {"run": str(run), "rank": None, "export": None} if run is not None else None
    else:
        assert run is not None  # found above when no --arch was given
        fields, source = export_fields(run, rank or 1, dataset, fine_tune)
        dataset = fields.pop("dataset")
    if dataset in ("imagenet", "folder"):
        raise UserError(
            f"train supports the in-memory data sets (CIFAR, MNIST-likes), not {dataset}"
        )
    settings = {**known[preset], **{k: v for k, v in overrides.items() if v is not None}}
    cutout = settings.pop("cutout", 0) if cutout is None else cutout
    size = dataset_info(dataset).image_size
    if not 0 <= cutout <= size:
        raise UserError(f"--cutout must lie in [0, {size}] for {dataset}, got {cutout}")
    augmentation = {**DEFAULT_AUGMENTATION[dataset], "cutout": cutout}
    if fields["space"] in recipe_spaces():  # e.g. an auxiliary head: trained, then removed
        fields["subnet"] = {
            **fields["subnet"],
            **arch_recipe(fields["space"]).subnet_options(settings),
        }
    config = TrainConfig(
        **fields,
        dataset=dataset,
        mode=mode,
        source=source,
        data_root=data_root,
        preset=preset,
        augmentation=augmentation,
        **settings,
    )
    return config.validated()


def _size_name(space_config: dict[str, Any]) -> str:
    """``C<channels>N<cells>``, or every size option as ``<name><value>`` joined by '-'."""
    size = {k: v for k, v in space_config.items() if k not in ("num_classes", "in_channels")}
    if set(size) == {"channels", "cells"}:
        return f"C{size['channels']}N{size['cells']}"
    return "-".join(f"{k}{v}" for k, v in size.items())


def default_run_dir(config: TrainConfig) -> Path:
    """runs/train-<run>-rank<K>[-finetune], or runs/train-<dataset>-C<c>N<n>-<hash of arch>."""
    source = config.source or {}
    if source.get("rank") is not None:
        name = f"{Path(source['run']).name}-rank{source['rank']}"
        name += "-finetune" if config.mode == "fine-tune" else ""
    else:
        digest = hashlib.sha1(config.architecture.encode()).hexdigest()[:8]
        name = f"{config.dataset}-{_size_name(config.space_config)}-{digest}"
    return Path("runs") / f"train-{name}"
