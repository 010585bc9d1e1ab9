"""The selection step of PGNAS: draw, rank on held-out data, record, export the top-k.

``bayesnas sample`` = ``sample(SampleConfig)``: Predictive draws from a sampler, each distinct
architecture scored once on the search's validation split (never the test split), every
candidate appended to samples.jsonl, the best-of-k curve written per sampler, and the top-k
exported as physically smaller networks under export/rank-K/.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bayesnas import progress, rundir
from bayesnas.config import check_seed
from bayesnas.config.search import MAX_BATCH, MAX_RATE
from bayesnas.data import first_images, search_data
from bayesnas.distributed import from_env
from bayesnas.errors import UserError
from bayesnas.selection.budget import Budget, draw_within_budget
from bayesnas.selection.costs import with_costs
from bayesnas.selection.finetune import FineTune, fine_tuned
from bayesnas.selection.posterior import SAMPLERS, Posterior, draw_architectures, load_posterior
from bayesnas.selection.rank import (
    BN_MODES,
    Candidate,
    batchnorm_for,
    best_of_k,
    distinct,
    evaluate_shared,
)
from bayesnas.selection.scorers import SCORERS, ScoringContext, ranking_key

SAMPLES = rundir.SAMPLES
DEFAULT_TOP_K = 5  # exported by default, or n when fewer are drawn
MAX_FINE_TUNE_STEPS = 1_000_000  # SGD steps per candidate: beyond any use, and never ends
MAX_DRAWS = 1_000_000  # --n: each distinct draw is scored on the validation split, so a million
# is more than a run could score in days; beyond it, the draws alone would fill the memory


@dataclass(frozen=True)
class SampleConfig:
    """What ``bayesnas sample`` does; every field maps to one flag."""

    run: Path | None = None  # None: the newest run under ./runs
    n: int = 20  # architectures drawn
    top_k: int | None = None  # exported to export/rank-K/; None: min(5, n)
    sampler: str = "posterior"  # posterior | uniform | fixed-dropout
    drop_rate: float | None = None  # fixed-dropout's rate; None: the posterior's mean drop rate
    bn: str = "stats"  # stats: the super-network's running statistics; recalibrate: re-estimate
    bn_steps: int = 20  # training batches for --bn recalibrate
    batch_size: int = 256
    val_size: int | None = None  # score on the first this-many validation images (None: all)
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    max_params: float | None = None  # budget in M params of the exact sub-network (None: none)
    max_flops: float | None = None  # budget in MFLOPs per image (None: none)
    fine_tune_steps: int = 0  # SGD steps per candidate before it is scored (0: inherited weights)
    fine_tune_lr: float = 0.05
    score: str | None = None  # a name in selection/scorers SCORERS; None: auto (scorer_for)

    @property
    def fine_tune(self) -> FineTune | None:
        """How candidates are fine-tuned before scoring; None: scored as inherited."""
        return FineTune(self.fine_tune_steps, self.fine_tune_lr) if self.fine_tune_steps else None

    def validated(self) -> SampleConfig:
        if not 1 <= self.n <= MAX_DRAWS:
            raise UserError(f"--n must lie in [1, {MAX_DRAWS}], got {self.n}")
        if self.top_k is None:
            return dataclasses.replace(self, top_k=min(DEFAULT_TOP_K, self.n)).validated()
        if not 0 <= self.top_k <= self.n:
            raise UserError(f"--top-k must lie in [0, n={self.n}], got {self.top_k}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        if self.bn not in BN_MODES:
            raise UserError(f"--bn must be {' or '.join(BN_MODES)}, got {self.bn!r}")
        if self.drop_rate is not None and self.sampler != "fixed-dropout":
            raise UserError(
                f"--drop-rate applies to --sampler fixed-dropout only, not {self.sampler}"
            )
        if self.drop_rate is not None and not 0 < self.drop_rate < 1:
            raise UserError(f"--drop-rate must lie in (0, 1), got {self.drop_rate}")
        if not 0 <= self.fine_tune_steps <= MAX_FINE_TUNE_STEPS:
            steps = self.fine_tune_steps
            raise UserError(
                f"--fine-tune-steps must lie in [0, {MAX_FINE_TUNE_STEPS}], got {steps}"
            )
        if not 0 < self.fine_tune_lr <= MAX_RATE:
            raise UserError(
                f"--fine-tune-lr must lie in (0, {MAX_RATE:g}], got {self.fine_tune_lr}"
            )
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise UserError(f"--batch-size must lie in [1, {MAX_BATCH}], got {self.batch_size}")
        if self.fine_tune_steps and self.bn == "recalibrate":
            raise UserError(
                "--fine-tune-steps re-estimates BatchNorm while fine-tuning; drop --bn recalibrate"
            )
        from bayesnas.selection.scorers import SCORERS

        if self.score is not None and self.score not in SCORERS:
            raise UserError(f"--score must be one of {', '.join(SCORERS)}, got {self.score!r}")
        check_seed(self.seed)
        if self.batch_size < 1 or (self.val_size is not None and self.val_size < 1):
            raise UserError("--batch-size and --val-size must be at least 1")
        for name, value in (("--max-params", self.max_params), ("--max-flops", self.max_flops)):
            if value is not None and not value > 0:
                raise UserError(f"{name} must be > 0 (millions), got {value}")
        return self


def _data(posterior: Posterior, device: torch.device, config: SampleConfig):
    train, val, _, _ = search_data(posterior.config, device)

    def val_batches():
        return first_images(val.eval_batches(config.batch_size), config.val_size)

    def train_batches():
        return train.train_batches(config.batch_size, 0, config.seed)

    return val_batches, train_batches, train


def scorer_for(posterior: Posterior, score: str | None) -> str:
    """The scorer asked for, or by default: the zero-cost score when the search trained no
    weights (``--epochs 0``: q is the prior); log q when q combines a zero-cost prior with the
    likelihood (inherited accuracy carries only the likelihood's bias: on CIFAR-10 its Kendall
    tau was -0.28 to +0.11 and its top-1 worse than q's own, docs/benchmarks.md); else the
    paper's inherited accuracy."""
    if score is not None:
        return score
    if posterior.config.epochs == 0:
        return "zero-cost"
    return "log-q" if posterior.config.arch_prior != "uniform" else "inherited"


def _rows(
    posterior: Posterior, candidates: list[Candidate], config: SampleConfig, score: str
) -> list[dict]:
    net = posterior.program.net
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return [
        {
            "sampler": config.sampler,
            "seed": config.seed,
            "n": config.n,
            "top_k": config.top_k,
            "bn": config.bn,
            "score_by": score,
            "rank": rank,
            "draws": len(c.draws),
            "first_draw": c.draws[0],
            **c.metrics,
            "log_q": c.log_q,
            "architecture": net.describe(c.arch),
            "encoding": net.encode(c.arch),
            "time": when,
        }
        for rank, c in enumerate(candidates, start=1)
    ]


def _append_rows(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """Add rows to samples.jsonl atomically: earlier rows are kept, a crash loses nothing."""
    path = run_dir / SAMPLES
    rundir.repair_tail(path)  # a torn last line would otherwise end up mid-file
    earlier = path.read_bytes() if path.is_file() else b""  # kept as it is, even undecodable
    data = earlier + "".join(json.dumps(r) + "\n" for r in rows).encode()
    rundir.atomic_write_bytes(path, lambda f: f.write(data))


def _export_top(
    posterior: Posterior,
    ranked: list[Candidate],
    rows: list[dict],
    config: SampleConfig,
    train_batches,
) -> None:
    """Write export/rank-K/ for the top-k, replacing an earlier export as a whole; each with the
    BatchNorm statistics it was ranked with. With top-k 0 an earlier export is left as it is."""
    from bayesnas.export import export_candidate

    k, net = config.top_k, posterior.program.net
    if k == 0:
        return
    target = posterior.run_dir / "export"
    staging = posterior.run_dir / ".export-staging"
    shutil.rmtree(staging, ignore_errors=True)
    dataset = posterior.payload["dataset"]
    try:
        for rank, (candidate, row) in enumerate(zip(ranked[:k], rows[:k], strict=False), start=1):
            out = staging / f"rank-{rank}"
            out.mkdir(parents=True)
            arch = candidate.arch.to(posterior.program.guide.gate_logits.device)
            tune = config.fine_tune  # the export holds the weights it was ranked with
            subnet = None if tune is None else fine_tuned(net, arch, train_batches, tune)
            with batchnorm_for(net, arch, config.bn, train_batches, config.bn_steps):
                export_candidate(out, net, arch, metrics=row, dataset=dataset, subnet=subnet)
    except BaseException:  # a full disk, Ctrl-C: the earlier export stays as it was
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)


def sample(config: SampleConfig) -> tuple[Path, list[dict[str, Any]]]:
    """Run the selection step; returns the run directory and the ranked rows of this call."""
    config = config.validated()
    run_dir = rundir.find_run(config.run)
    dist, device = from_env(config.device)  # under torchrun: the candidates split over ranks
    posterior = load_posterior(run_dir, device)
    val_batches, train_batches, train_split = _data(posterior, device, config)
    budget = Budget(config.max_params, config.max_flops)
    drawn = None
    if budget.active:
        example = next(iter(val_batches()))[0]
        drawn = draw_within_budget(
            posterior, config.n, config.sampler, config.seed, config.drop_rate, budget, example
        )
        archs, log_q = drawn.archs, drawn.log_q
    else:
        archs, log_q = draw_architectures(
            posterior, config.n, config.sampler, config.seed, config.drop_rate
        )
    net = posterior.program.net
    candidates = distinct(net, archs, log_q)
    with progress.bar(
        len(candidates[dist.rank :: dist.world]),
        f"scoring {config.sampler} candidates",
        "cand",
        config.progress and dist.main,
    ) as bar:
        evaluate_shared(
            dist,
            net,
            candidates,
            val_batches,
            bn=config.bn,
            train_batches=train_batches,
            bn_steps=config.bn_steps,
            fine_tune=config.fine_tune,
            progress=bar.update,
        )
    context = ScoringContext(posterior, val_batches, train_split, device, config.seed)
    score = scorer_for(posterior, config.score)
    SCORERS[score]().score(context, candidates)
    ranked = sorted(candidates, key=ranking_key)
    rows = with_costs(posterior, _rows(posterior, ranked, config, score), budget, drawn)
    if not dist.main:  # rank 0 alone writes, once
        return run_dir, rows
    rundir.write_json(
        run_dir / f"best_of_k-{config.sampler}.json",
        {
            "sampler": config.sampler,
            "seed": config.seed,
            "bn": config.bn,
            "n": config.n,
            "curve": best_of_k(
                ((min(c.draws), c.metrics["val_acc"]) for c in candidates), len(archs)
            ),
        },
    )
    _append_rows(run_dir, rows)
    _export_top(posterior, ranked, rows, config, train_batches)
    return run_dir, rows
