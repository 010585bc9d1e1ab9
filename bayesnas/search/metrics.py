"""What a search reports: the metrics.jsonl row of each epoch, and q's mode scored on held-out
data (the same score selection ranks by, from ``spaces/scoring.py``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from bayesnas.data import Data, first_images
from bayesnas.errors import UserError
from bayesnas.loop import LoopState
from bayesnas.program import Program
from bayesnas.search.setup import SearchSetup
from bayesnas.spaces.scoring import evaluate_architecture

NO_MODE = "no mode yet: q's gate logits are tied, so no architecture was scored"
STATS = ("loss", "nll", "correct", "images", "steps")


def zero_sums(device: torch.device | str) -> dict[str, torch.Tensor]:
    """The running sums of an epoch, kept on the device (read once per epoch)."""
    return {k: torch.zeros((), device=device) for k in STATS}


def has_mode(gate_logits: torch.Tensor) -> bool:
    """Whether q has a unique mode: no edge with tied top op logits (cell spaces), no keep
    gate at exactly 1/2 (channel gates). A gate warm-up or a uniform run has none."""
    logits = gate_logits.detach()
    if logits.dim() >= 2 and logits.shape[-1] > 1:
        top = logits.topk(2, dim=-1).values
        return bool((top[..., 0] > top[..., 1]).all())
    return bool((logits != 0).all())


def check_finite(sums: dict[str, torch.Tensor], epoch: int) -> None:
    """Stop before a diverged state is checkpointed (the loss stays on the device otherwise)."""
    loss = float(sums["loss"])
    if not math.isfinite(loss):
        raise UserError(
            f"the loss became {loss} in epoch {epoch + 1} and the search stopped without "
            "saving that state: start a new run with a lower --lr or --gate-lr"
        )


def score_mode(
    p: Program, val_data: Data, limit: int | None, autocast: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """q's gate statistics and its mode's validation score on the first ``limit`` images
    (None: all); no score when q has no mode (tied logits: the argmax is nobody's choice)."""
    gates = p.net.gate_statistics(p.guide.gate_logits)
    if not has_mode(p.guide.gate_logits):
        gates["mode"] = None
        return gates, {"accuracy": None, "nll": None, "images": None}
    batches = first_images(val_data.eval_batches(256), limit)
    return gates, evaluate_architecture(p.net, p.mode(), batches, autocast=autocast)


def epoch_metrics(
    s: SearchSetup, loop: LoopState, val_data: Data, seconds: float, images: float
) -> dict[str, Any]:
    """The metrics.jsonl row of the epoch just trained (its sums are over every rank)."""
    sums, p = loop.sums, s.program
    steps, seen = max(1.0, float(sums["steps"])), max(1.0, float(sums["images"]))
    loss, nll = float(sums["loss"]) / steps, float(sums["nll"]) / seen
    kl = float(p.kl().detach()) / s.kl_n
    gates, val = score_mode(p, val_data, s.config.eval_size, s.cuda)
    learned = (loop.epoch + 1) * s.steps_per_epoch > s.warmup_steps
    return {
        "epoch": loop.epoch + 1,
        "step": (loop.epoch + 1) * s.steps_per_epoch,
        "elbo": -loss,
        "nll": nll,
        "kl": kl,
        "weight_prior": loss - nll - kl,
        "train_acc": float(sums["correct"]) / seen,
        "val_acc": val["accuracy"],
        "val_nll": val["nll"],
        "val_images": val["images"],
        "lr": s.optimizer.param_groups[0]["lr"],
        "gate_lr": s.optimizer.param_groups[-1]["lr"] if s.learns_q else 0.0,
        "q_learns": s.learns_q and learned,
        "tau": p.guide.temperature,
        "gates": gates,
        "images_per_s": images / max(seconds, 1e-9),
        "seconds": seconds,
    } | ({} if gates["mode"] else {"mode": NO_MODE})
