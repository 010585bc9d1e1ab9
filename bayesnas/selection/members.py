"""Who is in an ensemble: the top-K of samples.jsonl, or K fresh draws from the posterior.

An ensemble is a sequence of K slots, each naming one distinct member (a hard architecture on
the shared weights). From samples.jsonl the slots are the K best distinct candidates by
validation accuracy; from the posterior they are K Predictive draws, duplicates kept, so that
uniform weights over the slots are the Monte Carlo estimate of the posterior predictive.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bayesnas import rundir
from bayesnas.errors import UserError
from bayesnas.selection.posterior import Posterior, draw_architectures
from bayesnas.selection.rank import distinct

SOURCES = ("samples", "posterior")
WEIGHTINGS = ("uniform", "posterior")


@dataclass
class Member:
    """One distinct architecture of the ensemble and log q(architecture) under the posterior."""

    arch: torch.Tensor
    log_q: float
    architecture: str
    encoding: str


def from_samples(posterior: Posterior, k: int) -> tuple[list[Member], list[int]]:
    """The top-k distinct candidates of samples.jsonl by validation accuracy (then NLL)."""
    path = posterior.run_dir / rundir.SAMPLES
    rows = rundir.read_jsonl(path, rundir.note)
    if not rows:
        raise UserError(
            f"{posterior.run_dir} has no samples yet: run `bayesnas sample --run "
            f"{posterior.run_dir}` first, or use --from posterior"
        )
    best: dict[str, dict] = {}
    for row in rows:
        if "encoding" not in row or "val_acc" not in row:
            raise UserError(f"{path} has a row without encoding or val_acc; sample again")
        key = row["encoding"]
        if key not in best or (row["val_acc"], -row["val_nll"]) > (
            best[key]["val_acc"],
            -best[key]["val_nll"],
        ):
            best[key] = row
    ranked = sorted(best.values(), key=lambda r: (-r["val_acc"], r["val_nll"]))
    if k > len(ranked):
        raise UserError(
            f"--members {k} is more than the {len(ranked)} distinct candidates in {path}: "
            "lower --members, or draw more with `bayesnas sample --n`"
        )
    net, guide = posterior.program.net, posterior.program.guide
    members = []
    for row in ranked[:k]:
        try:
            arch = net.decode(row["encoding"])
        except (ValueError, TypeError) as exc:
            raise UserError(
                f"{path}: cannot read architecture {row['encoding']!r} ({exc})"
            ) from None
        log_q = float(guide.posterior(1).log_prob(arch[None].to(guide.gate_logits)).item())
        members.append(Member(arch, log_q, net.describe(arch), row["encoding"]))
    return members, list(range(k))


def from_posterior(posterior: Posterior, k: int, seed: int) -> tuple[list[Member], list[int]]:
    """K fresh draws from the posterior by Predictive; slots name each draw's member."""
    net = posterior.program.net
    archs, log_q = draw_architectures(posterior, k, "posterior", seed)
    candidates = distinct(net, archs, log_q)
    slots = [0] * k
    members = []
    for index, candidate in enumerate(candidates):
        for draw in candidate.draws:
            slots[draw] = index
        arch = candidate.arch
        members.append(Member(arch, candidate.log_q, net.describe(arch), net.encode(arch)))
    return members, slots


def slot_weights(members: list[Member], slots: list[int], weighting: str) -> torch.Tensor:
    """Weight of each member for the ensemble of ``slots``: ``uniform`` gives each slot 1/K
    (a member drawn twice counts twice); ``posterior`` gives each distinct member in the slots
    q(arch) normalised over them (members outside the slots weigh 0)."""
    weights = torch.zeros(len(members), dtype=torch.float64)
    if weighting == "uniform":
        for slot in slots:
            weights[slot] += 1.0 / len(slots)
        return weights
    used = sorted(set(slots))
    log_q = torch.tensor([members[m].log_q for m in used], dtype=torch.float64)
    weights[used] = torch.softmax(log_q, 0)
    return weights
