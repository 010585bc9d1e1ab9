"""Bayesian model averaging over (architecture, weights) pairs: ``bayesnas ensemble``.

The ensemble's prediction is the weighted mean of its members' class *probabilities*, each
member a hard architecture on the super-network's shared weights: K sub-network passes, no
retraining. Reported on the validation split (the test split only with ``test=True``; a search
never reads it): accuracy, NLL, Brier and ECE for the ensemble, its best single member (chosen
on validation) and the posterior mode; also ensembles of the first 1..K slots and reliability
bins. Written atomically to ensemble.json in the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bayesnas import progress, rundir
from bayesnas.config import check_seed
from bayesnas.config.search import MAX_BATCH
from bayesnas.data import TensorData, dataset_info, load_arrays, resolve_data_root
from bayesnas.device import resolve_device
from bayesnas.errors import UserError
from bayesnas.selection.calibration import BINS, calibration_metrics, confidence_bins
from bayesnas.selection.members import (
    SOURCES,
    WEIGHTINGS,
    Member,
    from_posterior,
    from_samples,
    slot_weights,
)
from bayesnas.selection.posterior import Posterior, load_posterior
from bayesnas.selection.rank import BN_MODES, batchnorm_for
from bayesnas.selection.sample import SampleConfig, _data
from bayesnas.spaces import SuperNet

ENSEMBLE = "ensemble.json"

MAX_MEMBERS = 10_000  # networks averaged: each is evaluated on every split


@dataclass(frozen=True)
class EnsembleConfig:
    """What ``bayesnas ensemble`` does; every field maps to one flag."""

    run: Path | None = None  # None: the newest run under ./runs
    members: int = 5  # K
    source: str = "samples"  # samples: top-K of samples.jsonl; posterior: K fresh draws
    weights: str = "uniform"  # uniform: 1/K per slot; posterior: q(arch) over distinct members
    bn: str = "stats"  # stats: the super-network's BatchNorm statistics; recalibrate: per member
    bn_steps: int = 20
    batch_size: int = 256
    val_size: int | None = None
    test: bool = False  # also score the test split (the only reader of it besides `train`)
    seed: int = 0  # of the posterior draws
    device: str = "auto"
    progress: bool = True

    def validated(self) -> EnsembleConfig:
        if not 1 <= self.members <= MAX_MEMBERS:
            raise UserError(f"--members must lie in [1, {MAX_MEMBERS}], got {self.members}")
        if self.source not in SOURCES:
            raise UserError(f"--from must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.weights not in WEIGHTINGS:
            raise UserError(f"--weights must be one of {', '.join(WEIGHTINGS)}")
        if self.bn not in BN_MODES:
            raise UserError(f"--bn must be {' or '.join(BN_MODES)}, got {self.bn!r}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise UserError(f"--batch-size must lie in [1, {MAX_BATCH}], got {self.batch_size}")
        if self.val_size is not None and self.val_size < 1:
            raise UserError(f"--val-size must be at least 1, got {self.val_size}")
        check_seed(self.seed)
        return self


def _test_batches(posterior: Posterior, device: torch.device, batch_size: int) -> Callable:
    """The data set's test split, read here only because the user asked (``--test``)."""
    config = posterior.config
    if config.dataset == "imagenet":
        raise UserError("--test needs a data set with a test split in memory; not imagenet")
    root = resolve_data_root(config.dataset, config.data_root)
    images, labels = load_arrays(config.dataset, root, train=False)
    data = TensorData(images, labels, dataset_info(config.dataset), device, None)
    return lambda: data.eval_batches(batch_size)


@torch.no_grad()
def predict(net: SuperNet, arch: torch.Tensor, batches: Iterator) -> tuple[torch.Tensor, ...]:
    """Class probabilities ``[n, classes]`` (float64, on the CPU) of ``arch`` and the labels."""
    was_training = net.training
    net.eval()
    probs, labels = [], []
    try:
        for images, target in batches:
            logits = net.forward_architecture(images, arch).float()
            probs.append(torch.softmax(logits, 1).double().cpu())
            labels.append(target.cpu())
    finally:
        net.train(was_training)
    return torch.cat(probs), torch.cat(labels)


def _split_report(
    probs: list[torch.Tensor],
    labels: torch.Tensor,
    mode: torch.Tensor,
    weights: Callable,
    best: int,
) -> dict[str, Any]:
    """One split's metrics: the ensemble, its best member, the mode, sizes 1..K, reliability."""
    stacked = torch.stack(probs)

    def average(w: torch.Tensor) -> torch.Tensor:
        return (w[:, None, None] * stacked).sum(0)

    ensemble = average(weights(None))
    return {
        "ensemble": calibration_metrics(ensemble, labels),
        "best_member": calibration_metrics(probs[best], labels),
        "mode": calibration_metrics(mode, labels),
        "members": [calibration_metrics(p, labels) for p in probs],
        "sizes": [
            {"k": k, **calibration_metrics(average(weights(k)), labels)}
            for k in range(1, weights.slots + 1)  # type: ignore[attr-defined]
        ],
        "reliability": {
            "ensemble": confidence_bins(ensemble, labels),
            "best_member": confidence_bins(probs[best], labels),
        },
    }


class _Weights:
    """Weights of the ensemble of the first k slots (None: all K)."""

    def __init__(self, members: list[Member], slots: list[int], weighting: str):
        self.members, self.slots_of, self.weighting = members, slots, weighting
        self.slots = len(slots)

    def __call__(self, k: int | None) -> torch.Tensor:
        return slot_weights(self.members, self.slots_of[: k or self.slots], self.weighting)


def ensemble(config: EnsembleConfig) -> tuple[Path, dict[str, Any]]:
    """Build, score and record the ensemble; returns the run directory and ensemble.json."""
    config = config.validated()
    run_dir = rundir.find_run(config.run)
    device = resolve_device(config.device)
    posterior = load_posterior(run_dir, device)
    if config.source == "samples":
        members, slots = from_samples(posterior, config.members)
    else:
        members, slots = from_posterior(posterior, config.members, config.seed)
    sample_config = SampleConfig(
        batch_size=config.batch_size, val_size=config.val_size, seed=config.seed
    )
    val_batches, train_batches, _ = _data(posterior, device, sample_config)
    splits = {"val": val_batches}
    if config.test:
        splits["test"] = _test_batches(posterior, device, config.batch_size)
    net = posterior.program.net
    mode = posterior.program.mode().to(device)
    archs = [m.arch.to(device) for m in members] + [mode]
    probs: dict[str, list[torch.Tensor]] = {name: [] for name in splits}
    labels: dict[str, torch.Tensor] = {}
    with progress.bar(len(archs), "ensemble", "net", config.progress) as bar:
        for arch in archs:
            with batchnorm_for(net, arch, config.bn, train_batches, config.bn_steps):
                for name, batches in splits.items():
                    p, labels[name] = predict(net, arch, batches())
                    probs[name].append(p)
            bar.update(1)
    weights = _Weights(members, slots, config.weights)
    val_members = [calibration_metrics(p, labels["val"]) for p in probs["val"][:-1]]
    best = max(
        range(len(members)), key=lambda i: (val_members[i]["accuracy"], -val_members[i]["nll"])
    )
    report = {
        "run": str(run_dir),
        "members": config.members,
        "source": config.source,
        "weights": config.weights,
        "bn": config.bn,
        "seed": config.seed,
        "bins": BINS,
        "best_member": best,
        "mode_architecture": net.describe(mode),
        "member_list": [
            {
                "architecture": m.architecture,
                "encoding": m.encoding,
                "log_q": m.log_q,
                "weight": float(weights(None)[i]),
            }
            for i, m in enumerate(members)
        ],
        "slots": slots,
        "splits": {
            name: _split_report(p[:-1], labels[name], p[-1], weights, best)
            for name, p in probs.items()
        },
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    rundir.write_json(run_dir / ENSEMBLE, report)
    return run_dir, report
