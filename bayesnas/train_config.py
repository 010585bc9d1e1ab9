"""What ``bayesnas train`` trains: the network, the data set and the presets' hyper-parameters.

The network is an export of a search (``export/rank-K/``, re-initialised or fine-tuned from its
inherited weights) or any NAS-Bench-201 cell string; ``resolve_config`` turns the command
line's options into one frozen ``TrainConfig``, saved in the training run's config.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bayesnas import rundir
from bayesnas.data import DEFAULT_AUGMENTATION, DatasetInfo, dataset_info
from bayesnas.errors import UserError
from bayesnas.export import ARCHITECTURE, read_export

MODES = ("from-scratch", "fine-tune")
NB201_SIZE = {"channels": 16, "cells": 5}  # NAS-Bench-201's networks, when nothing else says
# Every preset: SGD with Nesterov momentum 0.9, lr cosine per step to 0, random crop and flip
# as the data set's default augmentation in data.py says (pad 4 and flips on CIFAR), no cutout.
PRESETS: dict[str, dict[str, Any]] = {
    # NAS-Bench-201's training protocol (Dong & Yang, 2020)
    "nb201": {"epochs": 200, "batch_size": 256, "lr": 0.1, "weight_decay": 5e-4},
    # roughly 10 minutes for a C=8, N=1 cell on CIFAR-10's 50k images on an idle 2-core CPU,
    # even the costliest cell (all nor_conv_3x3); measured figures in docs/cli.md
    "short": {"epochs": 6, "batch_size": 128, "lr": 0.05, "weight_decay": 5e-4},
    # --fine-tune's default: a few gentle epochs from the inherited weights
    "finetune": {"epochs": 3, "batch_size": 128, "lr": 0.01, "weight_decay": 5e-4},
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run; saved in config.json and every checkpoint."""

    architecture: str  # the NAS-Bench-201 string (or the export's description of its network)
    space: str  # the search space the architecture belongs to
    space_config: dict[str, Any]  # that space's size: channels/cells or width/blocks, classes
    subnet: dict[str, Any]  # the network's spec for spaces.subnet.subnet_from_spec
    dataset: str
    mode: str = "from-scratch"  # from-scratch: fresh weights; fine-tune: the export's weights
    source: dict[str, Any] | None = None  # {"run", "rank", "export"} when taken from a search
    data_root: str | None = None
    preset: str = "short"
    epochs: int = 6
    batch_size: int = 128
    lr: float = 0.05  # SGD, Nesterov momentum 0.9, cosine to 0 over all steps (per step)
    weight_decay: float = 5e-4
    augmentation: dict[str, Any] = dataclasses.field(default_factory=dict)  # pad, flip, cutout
    train_size: int | None = None  # use only the first this-many training images
    seed: int = 0
    device: str = "auto"

    def validated(self) -> TrainConfig:
        """Self, after checking the numbers a user gives; UserError names the first bad one."""
        for name in ("epochs", "batch_size", "train_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not self.weight_decay >= 0:
            raise UserError(f"--weight-decay must be >= 0, got {self.weight_decay}")
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
    **overrides: Any,
) -> TrainConfig:
    """What to train, from the command line's options: an export of ``run`` at ``rank`` or the
    cell ``arch``; then the preset, then explicit ``overrides`` (None means unset)."""
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
    preset = preset or ("finetune" if fine_tune else "short")
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    if data_root is not None and not Path(data_root).expanduser().is_dir():
        raise UserError(f"--data-root {data_root} does not exist; pass the folder holding the data")
    if run is None and arch is None:
        try:
            run = find_run(None)
        except UserError:
            raise UserError(
                "nothing to train: pass --run RUN (a search with an export) or --arch STRING "
                "(a NAS-Bench-201 cell); there is no search under ./runs"
            ) from None
    elif run is not None:
        run = find_run(run)
    searched = _search_config(run) if run is not None else {}
    if data_root is not None:  # absolute, so that a resume from another folder finds it
        data_root = str(Path(data_root).expanduser().resolve())
    else:
        data_root = searched.get("data_root")
    if arch is not None:
        dataset = dataset or searched.get("dataset") or "cifar10"
        size = searched.get("space_options") if searched.get("space") == "nb201" else None
        size = {**NB201_SIZE, **(size or {})}
        given = {"channels": channels, "cells": cells}
        size = {k: size[k] if v is None else v for k, v in given.items()}
        fields = _cell_fields(arch, size, dataset_info(dataset))
        source = {"run": str(run), "rank": None, "export": None} if run is not None else None
    else:
        fields, source = _export_fields(run, rank or 1, dataset, fine_tune)
        dataset = fields.pop("dataset")
    if dataset in ("imagenet", "folder"):
        raise UserError(
            f"train supports the in-memory data sets (CIFAR, MNIST-likes), not {dataset}"
        )
    augmentation = {**DEFAULT_AUGMENTATION[dataset], "cutout": 0}
    settings = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
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


def _search_config(run: Path) -> dict[str, Any]:
    """The search configuration of run ``run`` as plain data ({} if it has none)."""
    try:
        saved = json.loads((run / rundir.CONFIG).read_text())
    except (OSError, ValueError):
        raise UserError(f"{run / rundir.CONFIG} is not readable JSON; pass another --run") from None
    if not isinstance(saved, dict) or saved.get("command") == "train":
        raise UserError(f"{run} is a training run, not a search: pass a search's run directory")
    config = saved.get("config")
    return config if isinstance(config, dict) else {}


def _cell_fields(arch: str, size: dict[str, int], info: DatasetInfo) -> dict[str, Any]:
    """The network fields of a NAS-Bench-201 cell of ``size`` on data set ``info``."""
    from bayesnas.spaces.nb201_cell import OPS, from_string, to_string

    try:
        ops = from_string(arch)
    except ValueError as exc:
        raise UserError(f"malformed --arch: {exc}") from None
    for name, value in size.items():
        if value < 1:
            raise UserError(f"--{name} must be at least 1, got {value}")
    space_config = {**size, "num_classes": info.num_classes, "in_channels": info.channels}
    return {
        "architecture": to_string(ops),
        "space": "nb201",
        "space_config": space_config,
        "subnet": {"space": "nb201", **space_config, "ops": [OPS[i] for i in ops]},
    }


def _export_fields(
    run: Path, rank: int, dataset: str | None, fine_tune: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The network fields and source of export ``rank`` of ``run``, on ``dataset``."""
    folder = run / "export" / f"rank-{rank}"
    if not (folder / ARCHITECTURE).is_file():
        raise UserError(
            f"{run} has no export at rank {rank} ({folder}): run "
            f"`bayesnas sample --run {run} --top-k {rank}` first, or pass another --rank"
        )
    description, _ = read_export(folder)
    searched_on = (description.get("dataset") or {}).get("name")
    dataset = dataset or searched_on
    if dataset is None:
        raise UserError(f"{folder / ARCHITECTURE} names no data set; pass --dataset")
    subnet, space_config = dict(description["subnet"]), dict(description["space_config"])
    if dataset != searched_on:
        if fine_tune:
            raise UserError(
                f"--fine-tune keeps the export's weights, fitted to {searched_on}; "
                f"drop --dataset {dataset} or use --from-scratch"
            )
        info = dataset_info(dataset)
        facts = {"num_classes": info.num_classes, "in_channels": info.channels}
        subnet, space_config = {**subnet, **facts}, {**space_config, **facts}
    fields = {
        "architecture": description["architecture"],
        "space": description["space"],
        "space_config": space_config,
        "subnet": subnet,
        "dataset": dataset,
    }
    return fields, {"run": str(run), "rank": rank, "export": str(folder)}


def default_run_dir(config: TrainConfig) -> Path:
    """runs/train-<run>-rank<K>[-finetune], or runs/train-<dataset>-C<c>N<n>-<hash of cell>."""
    source = config.source or {}
    if source.get("rank") is not None:
        name = f"{Path(source['run']).name}-rank{source['rank']}"
        name += "-finetune" if config.mode == "fine-tune" else ""
    else:
        digest = hashlib.sha1(config.architecture.encode()).hexdigest()[:8]
        size = config.space_config
        name = f"{config.dataset}-C{size['channels']}N{size['cells']}-{digest}"
    return Path("runs") / f"train-{name}"
