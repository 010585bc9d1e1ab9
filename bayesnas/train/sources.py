"""Where ``bayesnas train``'s network comes from: an architecture string, or a search's export.

An ``--arch`` string is read by its form: the space whose training recipe
(``spaces.base.TrainRecipe``) reads it parses it, e.g. a NAS-Bench-201 cell string or DARTS's
``Genotype(...)``. Each returns the config fields naming the network (architecture, space,
sizes, spec).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bayesnas import rundir
from bayesnas.config import check_space_options
from bayesnas.data import DatasetInfo, dataset_info
from bayesnas.errors import UserError
from bayesnas.export import ARCHITECTURE, read_export
from bayesnas.spaces import TrainRecipe, get_space, list_spaces


def arch_space(arch: str) -> str:
    """The space an architecture string belongs to, by its form (each space's recipe reads
    its own notation)."""
    readers = [name for name in list_spaces() if (r := get_space(name).recipe) and r.reads(arch)]
    if not readers:
        raise UserError(
            f"malformed --arch {arch!r}: write "
            + " or ".join(f"a {arch_recipe(n).notation}" for n in recipe_spaces())
        )
    return readers[0]


def arch_recipe(space: str) -> TrainRecipe:
    """The training recipe of ``space`` (one whose strings ``arch_space`` recognised)."""
    recipe = get_space(space).recipe
    assert recipe is not None
    return recipe


def recipe_spaces() -> list[str]:
    """The spaces whose architectures ``train --arch`` reads."""
    return [name for name in list_spaces() if get_space(name).recipe is not None]


def search_config(run: Path) -> dict[str, Any]:
    """The search configuration of run ``run`` as plain data ({} if it has none)."""
    try:
        saved = json.loads((run / rundir.CONFIG).read_text())
    except (OSError, ValueError):
        raise UserError(f"{run / rundir.CONFIG} is not readable JSON; pass another --run") from None
    if not isinstance(saved, dict) or saved.get("command") == "train":
        raise UserError(f"{run} is a training run, not a search: pass a search's run directory")
    config = saved.get("config")
    return config if isinstance(config, dict) else {}


def arch_fields(arch: str, size: dict[str, int], info: DatasetInfo) -> dict[str, Any]:
    """The network fields of architecture string ``arch`` of ``size`` on data set ``info``."""
    space = arch_space(arch)
    check_space_options(space, size)  # before any data is read or network built
    space_config = {**size, "num_classes": info.num_classes, "in_channels": info.channels}
    recipe = arch_recipe(space)
    try:
        text, kept = recipe.parse(arch)
    except ValueError as exc:
        raise UserError(f"{recipe.malformed}: {exc}") from None
    return {
        "architecture": text,
        "space": space,
        "space_config": space_config,
        "subnet": {"space": space, **space_config, **kept},
    }


def export_fields(
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
