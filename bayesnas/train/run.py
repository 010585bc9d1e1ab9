"""`run_train`: start or resume a training run in its run directory (see the package)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bayesnas import rundir
from bayesnas.errors import UserError
from bayesnas.train.config import TrainConfig
from bayesnas.train.loop import RESULT, Trainer
from bayesnas.train.parts import build_model

__all__ = ["RESULT", "Trainer", "build_model", "run_train"]


def _resumed(run_dir: Path, progress: bool, device: str | None) -> Trainer:
    """A Trainer restored from a run's config.json and its latest checkpoint."""
    try:
        saved = json.loads((run_dir / rundir.CONFIG).read_text())
        if isinstance(saved, dict) and saved.get("command") != "train":
            raise UserError(f"{run_dir} is a search run: resume it with `bayesnas search --resume`")
        config = TrainConfig.from_json(saved["config"])
    except (OSError, ValueError, KeyError, TypeError):  # ValueError: not JSON, or not UTF-8
        raise UserError(f"{run_dir / rundir.CONFIG} is corrupt; cannot resume") from None
    if (run_dir / RESULT).is_file():
        raise UserError(f"{run_dir} is finished ({RESULT} exists); nothing to resume")
    if device is not None:
        config = dataclasses.replace(config, device=device)
    checkpoint = run_dir / rundir.CHECKPOINT
    trainer = Trainer(config, run_dir, progress, inherit=not checkpoint.is_file())
    if checkpoint.is_file():
        trainer.load_state_dict(rundir.load_torch(checkpoint, "checkpoint"))
    return trainer


def run_train(
    config: TrainConfig | None,
    run_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str | None = None,
    announce: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Start (or resume) training in ``run_dir``; returns result.json's content and its folder."""
    if resume and force:
        raise UserError("--force starts a run over and --resume continues it; pass one of them")
    if resume and not (run_dir / rundir.CONFIG).is_file():
        raise UserError(f"{run_dir} is not a bayesnas run (no {rundir.CONFIG}); nothing to resume")
    if not resume:
        if config is None:
            raise ValueError("run_train needs a config unless it resumes")
        trainer = Trainer(config, run_dir, progress)  # loads data and network before any write
        rundir.create(run_dir)
    with rundir.locked(run_dir):
        if resume:
            trainer = _resumed(run_dir, progress, device)
        else:
            rundir.check_fresh(run_dir, force)
            payload = {
                "config": trainer.config.to_json(),
                "versions": rundir.versions(trainer.device),
            }
            rundir.write_json(run_dir / rundir.CONFIG, {"command": "train", **payload})
        if announce is not None:
            announce(run_dir)
        return trainer.run()
