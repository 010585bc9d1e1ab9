"""``run_search``: start or resume a search in a run directory, in one process or under torchrun.

A fresh search loads its data before any file is written; rank 0 then creates the directory,
takes its lock for the whole run and writes config.json (with the effective global batch and
learning rates). Every other rank only reads (config.json and checkpoint.pt on resume), so a
multi-node job needs the run directory on a file system all nodes share.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from bayesnas import rundir
from bayesnas.config import SearchConfig
from bayesnas.data import resolve_data_root
from bayesnas.distributed import Dist, from_env
from bayesnas.errors import UserError
from bayesnas.search.searcher import Searcher


def run_search(
    config: SearchConfig | None,
    run_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str | None = None,
    announce: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Start (or resume) a search in ``run_dir``; returns a summary of its posterior."""
    check_start(resume, force)
    if resume:
        config = _saved_config(run_dir, device)
    else:
        # record the data root a search reads (also when found, not given), so that a resume
        # and `sample` read the same files
        assert config is not None
        root = resolve_data_root(config.dataset, config.data_root)
        config = config.with_updates(data_root=str(root.resolve()))
    placement = from_env(config.device)  # this process's Dist and device, resolved once
    dist = placement[0]
    with ExitStack() as stack:
        if not resume:  # loads the data before any write
            searcher = Searcher(config, run_dir, progress, placement)
        dist.on_main(lambda: _claim(stack, run_dir, resume, force))
        if resume:
            searcher = _resumed(config, run_dir, progress, placement)
        else:
            dist.on_main(lambda: rundir.write_json(run_dir / rundir.CONFIG, _saved(searcher)))
        if announce is not None and dist.main:
            announce(run_dir)
        posterior = _run(searcher)  # None on ranks other than 0
        summary = dist.on_main(lambda: _summary(posterior))
    return dist.broadcast(summary)  # rank 0's summary on every rank


def check_start(resume: bool, force: bool) -> None:
    """``resume`` and ``force`` contradict each other: the one check of it (the CLI calls it
    before it compares a resumed run's options, the API in ``run_search``)."""
    if resume and force:
        raise UserError(
            "--force and --resume contradict each other: --resume continues a run, "
            "--force starts it over; pass one"
        )


def _saved_config(run_dir: Path, device: str | None) -> SearchConfig:
    """The configuration of the run being resumed (``device`` may change)."""
    if not (run_dir / rundir.CONFIG).is_file():
        raise UserError(f"{run_dir} is not a bayesnas run (no {rundir.CONFIG}); nothing to resume")
    try:
        saved = json.loads((run_dir / rundir.CONFIG).read_text())
        return SearchConfig.from_json(saved["config"]).with_updates(device=device)
    except (ValueError, KeyError, TypeError):  # ValueError: not JSON, or not UTF-8
        raise UserError(f"{run_dir / rundir.CONFIG} is corrupt; cannot resume") from None
    except UserError as exc:  # a value no search takes (a size beyond its bounds ...)
        raise UserError(f"{run_dir / rundir.CONFIG}: {exc}; cannot resume") from None


def _claim(stack: ExitStack, run_dir: Path, resume: bool, force: bool) -> None:
    """Rank 0: make the directory, hold its lock for the whole run, clear it if forced."""
    if not resume:
        rundir.create(run_dir)
    stack.enter_context(rundir.locked(run_dir))
    if not resume:
        rundir.check_fresh(run_dir, force)


def _resumed(
    config: SearchConfig, run_dir: Path, progress: bool, placement: tuple[Dist, torch.device]
) -> Searcher:
    """A Searcher restored from a run's config.json and its latest checkpoint."""
    path = run_dir / rundir.POSTERIOR
    if path.is_file():
        raise UserError(f"{run_dir} is finished (posterior.pt exists); nothing to resume")
    kind = rundir.not_a_file(path)
    if kind is not None:  # the finish would fail to rename its posterior over it
        raise UserError(f"{path} is {kind}, not a posterior: {rundir.posterior_remedy(run_dir)}")
    searcher = Searcher(config, run_dir, progress, placement)
    if (run_dir / rundir.CHECKPOINT).is_file():
        searcher.load_state_dict(rundir.load_torch(run_dir / rundir.CHECKPOINT, "checkpoint"))
    return searcher


def _saved(searcher: Searcher) -> dict[str, Any]:
    """config.json: the configuration, N of Eq. 15, versions, and how the work is divided."""
    c, dist = searcher.config, searcher.dist
    return {
        "config": c.to_json(),
        "kl_n": searcher.kl_n,
        "parallel": {
            "world_size": dist.world,
            "global_batch": c.batch_size,
            "batch_per_rank": c.batch_size // dist.world,
            "lr": c.lr,
            "gate_lr": c.gate_lr,
            "sync_bn": c.sync_bn and dist.active,
            "gradients": "averaged over ranks: each update is the one-process update on the "
            "global batch, so the learning rates apply unchanged",
        },
        "arch_prior": _prior_record(searcher),
        "versions": rundir.versions(searcher.device),
    }


def _prior_record(searcher: Searcher) -> dict[str, Any]:
    """The architecture prior the search used, with its logits (null: the flat prior)."""
    c, logits = searcher.config, searcher.arch_prior_logits
    return {
        "name": c.arch_prior,
        "strength": c.prior_strength,
        "proxy": c.prior_proxy,
        "logits": None if logits is None else logits.tolist(),
    }


def _run(searcher: Searcher) -> Path | None:
    try:
        return searcher.run()
    except rundir.DiskFull as exc:
        run_dir = searcher.run_dir
        if (run_dir / rundir.CHECKPOINT).is_file():
            then = (
                f"free some space, then resume with `bayesnas search --resume {run_dir}` "
                "(the last checkpoint is intact)"
            )
        else:
            then = (
                "no checkpoint was written yet: free some space, then start the search "
                "again (the same command with --force)"
            )
        raise rundir.disk_full(exc.path, exc.needed, then=then) from None


def _summary(path: Path | None) -> dict[str, Any]:
    assert path is not None  # rank 0 wrote it
    payload = rundir.load_torch(path, "posterior")
    summary = {k: payload[k] for k in ("mode", "mode_val_acc", "seconds", "dataset")}
    sampler = payload["config"].get("sampler", "posterior")
    return summary | {"path": path, "sampler": sampler, "epochs": payload["config"]["epochs"]}
