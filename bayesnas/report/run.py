"""One run directory loaded once, tolerantly: config, metrics, posterior, samples, steps.

Works on a finished run and on one still running (config.json and metrics.jsonl only): what is
missing becomes a note, never an exception; only unreadable inputs raise UserError.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bayesnas import rundir
from bayesnas.config import check_space_options
from bayesnas.errors import UserError
from bayesnas.rundir import SAMPLES
from bayesnas.selection.posterior import SAMPLERS

Row = dict[str, Any]


@dataclass
class RunData:
    """Everything a run directory holds so far; absent parts are None or empty."""

    run_dir: Path
    config: dict[str, Any]  # the SearchConfig as JSON
    metrics: list[Row]
    posterior: dict[str, Any] | None
    samples: list[Row]
    notes: list[str]
    steps: list[Row] = field(default_factory=list)  # steps.jsonl: schedules and loss per step
    posterior_damaged: bool = False  # posterior.pt is there but unusable (a note says why)

    @property
    def epochs_done(self) -> int:
        return self.config["epochs"] if self.posterior else len(self.metrics)

    @property
    def has_mode(self) -> bool:
        """Whether q has a mode: not while its gate logits are tied (a warm-up, a uniform run)."""
        if self.posterior is not None:
            from bayesnas.search import has_mode

            return has_mode(self.posterior["gate_logits"])
        return self.gates is not None and self.gates.get("mode") is not None

    @property
    def prior_posterior_logits(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The architecture prior's and q's gate logits when the prior is not flat (zero-cost);
        None for a flat prior, a run from before priors, or one without posterior.pt yet."""
        if self.posterior is None or self.posterior.get("arch_prior_logits") is None:
            return None
        prior = np.asarray(self.posterior["arch_prior_logits"], dtype=float)
        if not np.ptp(prior, axis=-1).any():
            return None  # every row tied (--prior-strength 0): the flat prior
        return prior, np.asarray(self.posterior["gate_logits"], dtype=float)

    @property
    def gates(self) -> dict[str, Any] | None:
        """The latest gate statistics: the posterior's, else the last epoch's."""
        if self.posterior is not None:
            return self.posterior["gates"]
        return self.metrics[-1]["gates"] if self.metrics else None

    @property
    def when(self) -> str:
        """When ``gates`` were taken, for titles."""
        if self.posterior:
            return "at the end"
        running = "" if self.posterior_damaged else " (running)"
        return f"after epoch {self.epochs_done}{running}"


def _posterior(run_dir: Path, notes: list[str]) -> tuple[dict[str, Any] | None, bool]:
    """posterior.pt, and whether it is there but unusable (then one note says so and what to do,
    and the run is not called unfinished)."""
    path = run_dir / rundir.POSTERIOR
    kind = rundir.not_a_file(path)
    if kind is not None:
        remedy = rundir.posterior_remedy(run_dir)
        notes.append(
            f"{path} is {kind}, not a posterior: {remedy}; figures from {rundir.METRICS} only"
        )
        return None, True
    if not path.is_file():
        return None, False
    try:
        return rundir.load_torch(path, "posterior"), False
    except rundir.UnsafeFile:
        raise  # never drawn around: the user must know that this file is not to be trusted
    except UserError as exc:
        notes.append(f"{exc}; figures from metrics.jsonl only")
        return None, True


def _config(run_dir: Path, posterior: dict[str, Any] | None, notes: list[str]) -> dict[str, Any]:
    """The search configuration from config.json, else from posterior.pt; the space it names
    must be one bayesnas can build (the figures do), and the one posterior.pt was searched in."""
    path = run_dir / rundir.CONFIG
    try:
        config = json.loads(path.read_bytes().decode())["config"]
    except (OSError, ValueError, KeyError, TypeError):  # ValueError: not UTF-8, or not JSON
        if posterior is None:
            raise UserError(
                f"{run_dir} is not a readable bayesnas run ({rundir.CONFIG} missing, or not JSON "
                "in UTF-8): restore it, or point to another run"
            ) from None
        notes.append(
            f"{rundir.CONFIG} missing, or not JSON in UTF-8: configuration taken from posterior.pt"
        )
        config, path = posterior["config"], run_dir / rundir.POSTERIOR
    try:
        if not isinstance(config, dict):
            raise UserError("the configuration is not a JSON object")
        check_space_options(config.get("space"), config.get("space_options", {}))
    except UserError as exc:
        raise UserError(f"{path} names no space bayesnas can build ({exc}): restore it") from None
    searched = posterior["config"] if posterior is not None else config
    if _space(searched) != _space(config):
        raise UserError(
            f"{path} names space {_space(config)} but {rundir.POSTERIOR} was searched in "
            f"{_space(searched)}: they come from different runs; restore the run's own {path.name}"
        )
    return config


def _space(config: dict[str, Any]) -> str:
    """The space a configuration names and its options, as ``nb201 (channels=4, cells=1)``."""
    options = ", ".join(f"{k}={v}" for k, v in (config.get("space_options") or {}).items())
    return f"{config.get('space')} ({options})"


def load_run(run_dir: Path) -> RunData:
    """Read whatever ``run_dir`` holds; every problem that is not fatal becomes a note."""
    notes: list[str] = []
    posterior, damaged = _posterior(run_dir, notes)
    reference = posterior.get("gates") if posterior else None
    rows = rundir.read_metrics(run_dir, warn=notes.append)
    metrics = _consistent_metrics(rows, reference, notes)
    config = _config(run_dir, posterior, notes)
    samples = _valid_samples(rundir.read_jsonl(run_dir / SAMPLES, notes.append), config, notes)
    steps = rundir.read_jsonl(run_dir / rundir.STEPS, notes.append)
    run = RunData(run_dir, config, metrics, posterior, samples, notes, steps, damaged)
    if posterior is None and not damaged:
        notes.append(
            f"run not finished: no posterior.pt, figures from metrics so far "
            f"({run.epochs_done} of {config['epochs']} epochs)"
        )
    return run


_NUMBERS = (
    "step", "elbo", "nll", "kl", "weight_prior", "train_acc", "val_acc", "val_nll",
    "val_images", "lr", "gate_lr", "tau", "images_per_s", "seconds",
)  # fmt: skip  # the fields the figures read as numbers


def _fits(value: Any, reference: Any) -> bool:
    """Whether a JSON value has the reference's structure: the same keys, list lengths and
    kinds of scalars (a missing one, None, fits any scalar)."""
    if isinstance(reference, dict):
        return (
            isinstance(value, dict)
            and value.keys() == reference.keys()
            and all(_fits(value[key], inner) for key, inner in reference.items())
        )
    if isinstance(reference, list):
        return (
            isinstance(value, list)
            and len(value) == len(reference)
            and all(_fits(a, b) for a, b in zip(value, reference, strict=True))
        )
    if value is None or reference is None:
        return not isinstance(value, (dict, list))
    if isinstance(reference, bool) or isinstance(value, bool):
        return isinstance(reference, bool) and isinstance(value, bool)
    if isinstance(reference, (int, float)):
        return isinstance(value, (int, float))
    return isinstance(value, type(reference))


def _metrics_defect(row: Any, gates: Any) -> str | None:
    """What is wrong with a metrics.jsonl row that the figures would trip on (None: nothing):
    its numbers not numbers, or its gates not shaped as ``gates``."""
    if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
        return "no epoch number"
    for key in _NUMBERS:
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return f"{key} is {value!r}"
    if not _fits(row.get("gates"), gates):
        return "its gates are not shaped as the posterior's"
    return None


def _consistent_metrics(rows: list[Any], reference: Any, notes: list[str]) -> list[Row]:
    """The rows of metrics.jsonl the figures can use; a damaged row (a field of another type, a
    missing edge) is skipped with a note. Gates are compared with the posterior's (``reference``)
    or, before there is one, with those of the row most other rows fit (a search writes every
    row alike)."""
    if reference is None:
        candidates = [row.get("gates") for row in rows if isinstance(row, dict)]
        if not candidates:
            return []
        reference = max(candidates, key=lambda ref: sum(_fits(other, ref) for other in candidates))
    kept = []
    for number, row in enumerate(rows, start=1):
        defect = _metrics_defect(row, reference)
        if defect is None:
            kept.append(row)
        else:
            notes.append(f"skipping row {number} of {rundir.METRICS}: {defect}")
    return kept


_SAMPLE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "sampler": str,
    "rank": int,
    "n": int,
    "draws": int,
    "first_draw": int,
    "val_acc": (int, float),
    "val_nll": (int, float),
    "params_m": (int, float),
    "mflops": (int, float),
    "architecture": str,
}


def _sample_defect(row: Any, space: str) -> str | None:
    """What is wrong with a samples.jsonl row (None: nothing) that the figures would trip on."""
    if not isinstance(row, dict):
        return "not a JSON object"
    for key, kind in _SAMPLE_FIELDS.items():
        value = row.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"{key} is {value!r}"
    if not 0 <= row["first_draw"] < row["n"] or row["rank"] < 1:
        return "first_draw or rank out of range"
    from bayesnas.spaces import lookup

    entry = lookup(space)
    if entry is not None and entry.sample_defect is not None:
        return entry.sample_defect(row)
    return None


def _valid_samples(rows: list[Any], config: dict[str, Any], notes: list[str]) -> list[Row]:
    """The rows of samples.jsonl that the figures can use; one note per row skipped."""
    kept = []
    for number, row in enumerate(rows, start=1):
        defect = _sample_defect(row, config.get("space", ""))
        if defect is None:
            kept.append(row)
        else:
            notes.append(f"skipping row {number} of {SAMPLES}: {defect}")
    return kept


def latest_calls(samples: list[Row]) -> tuple[dict[str, list[Row]], int]:
    """The rows of the latest ``bayesnas sample`` call of each sampler (a call's rows are ranked
    from 1), and how many earlier calls that leaves out."""
    calls: list[list[Row]] = []
    for row in samples:
        if row.get("rank") == 1 or not calls:
            calls.append([])
        calls[-1].append(row)
    latest = {call[0]["sampler"]: call for call in calls}
    order = sorted(latest, key=lambda s: SAMPLERS.index(s) if s in SAMPLERS else len(SAMPLERS))
    return {s: latest[s] for s in order}, len(calls) - len(latest)


def top_candidate(calls: dict[str, list[Row]]) -> Row | None:
    """The best candidate of all samplers' latest calls (validation accuracy, then NLL)."""
    rows = [r for call in calls.values() for r in call]
    return min(rows, key=lambda r: (-r["val_acc"], r["val_nll"])) if rows else None
