"""A finished search's posterior, and paired (architecture, weights) draws from it by Predictive.

Every draw is a hard architecture; its weights are the trained super-network's, masked by it
(the pair of PGNAS). Baseline samplers are guides of the same family with fixed parameters:
``uniform`` (keep-probability 1/2 per channel, or uniform over ops: uniform over the space) and
``fixed-dropout`` (one drop rate for every group, Bender et al.; the paper's "Random").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyro
import torch
from pyro.infer import Predictive

from bayesnas import rundir
from bayesnas.config import SearchConfig
from bayesnas.errors import UserError
from bayesnas.guides import VariationalDropoutGuide
from bayesnas.models import ARCH_SITE
from bayesnas.program import Program, build_program

SAMPLERS = ("posterior", "uniform", "fixed-dropout")


@dataclass
class Posterior:
    """The program of a finished run with its trained weights and gate parameters."""

    run_dir: Path
    config: SearchConfig
    program: Program
    payload: dict[str, Any]


def load_posterior(run_dir: Path, device: torch.device) -> Posterior:
    """Rebuild the program of ``run_dir`` from posterior.pt alone."""
    path = run_dir / rundir.POSTERIOR
    kind = rundir.not_a_file(path)
    if kind is not None:  # not a run still going: a name in the way of the finished posterior
        raise UserError(f"{path} is {kind}, not a posterior: {rundir.posterior_remedy(run_dir)}")
    if not path.is_file():
        raise UserError(
            f"{run_dir} has no finished posterior yet (still running or stopped): "
            f"finish it with `bayesnas search --resume {run_dir}`"
        )
    payload = rundir.load_torch(path, "posterior")
    config = SearchConfig.from_json(payload["config"])
    data = payload["dataset"]
    program = build_program(
        config,
        data["num_classes"],
        data["channels"],
        payload["kl_n"],
        data.get("image_size"),
        payload.get("arch_prior_logits"),
    )
    program.net.load_state_dict(payload["net"])
    with torch.no_grad():
        program.guide.gate_logits.copy_(payload["gate_logits"])
    program.elbo.to(device).eval()
    return Posterior(run_dir, config, program, payload)


def sampler_guide(
    posterior: Posterior, sampler: str, drop_rate: float | None
) -> VariationalDropoutGuide:
    """The guide a sampler draws from: the learned posterior, or a fixed baseline."""
    guide = posterior.program.guide
    layout = posterior.program.net.layout
    if sampler == "posterior":
        return guide
    if sampler == "fixed-dropout" and layout.kind != "bernoulli":
        raise UserError(
            "--sampler fixed-dropout needs channel gates (space resnet); "
            f"space {posterior.config.space!r} has one op per edge: use uniform"
        )
    if sampler == "uniform":
        logits = torch.zeros_like(guide.gate_logits)
    else:  # by default the posterior's mean drop rate: the same expected size, no learned shape
        if drop_rate is None:
            drop_rate = float(torch.sigmoid(-guide.gate_logits).mean())
        logits = torch.full_like(guide.gate_logits, math.log((1 - drop_rate) / drop_rate))
    return VariationalDropoutGuide(layout, logits, guide.num_data).to(guide.gate_logits.device)


@torch.no_grad()
def draw_architectures(
    posterior: Posterior,
    n: int,
    sampler: str = "posterior",
    seed: int = 0,
    drop_rate: float | None = None,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` hard architectures ``[n, *layout.shape]`` from ``sampler`` (by Predictive, in
    chunks under ``seed``) and log q(architecture) of each under the learned posterior."""
    program = posterior.program
    guide = sampler_guide(posterior, sampler, drop_rate)
    pyro.set_rng_seed(seed)
    draws = []
    with guide.exact():
        for start in range(0, n, chunk):
            predictive = Predictive(
                program.model,
                guide=guide,
                num_samples=min(chunk, n - start),
                return_sites=[ARCH_SITE],
                parallel=True,
            )
            draws.append(predictive(None)[ARCH_SITE].squeeze(1))
    archs = torch.cat(draws)
    log_q = program.guide.posterior(n).log_prob(archs)
    return archs.cpu(), log_q.cpu()
