"""Per-step records of a search (steps.jsonl): schedules and loss terms every few steps.

metrics.jsonl has one row per epoch, which shows a cosine learning rate or an annealed
temperature as a few points; figure 1 draws these rows instead, so its curves have their shape.
A row is the one SVI step it names (its batch's -ELBO, NLL, KL/N and weight-prior term, the
learning rates and tau it ran with), taken every ``every`` steps (at most about 1000 rows a run).
Rows are buffered and written with each checkpoint, and a resume drops the rows past its
checkpoint, so a resumed run's steps.jsonl equals an uninterrupted one's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bayesnas import rundir
from bayesnas.search.setup import SearchSetup

MAX_ROWS = 1000


def interval(total_steps: int) -> int:
    """Log every this-many steps: every step of a short search, about MAX_ROWS in all."""
    return max(1, -(-total_steps // MAX_ROWS))


class StepLog:
    """Takes the per-step record of the search ``setup`` trains in ``run_dir``."""

    def __init__(self, setup: SearchSetup, run_dir: Path):
        self.setup = setup
        self.every = interval(setup.total_steps)
        self.path = Path(run_dir) / rundir.STEPS
        self.rows: list[dict[str, Any]] = []
        self._before: dict[str, torch.Tensor] | None = None

    def start(self, steps_done: int) -> None:
        """Drop rows of steps past ``steps_done`` (a resume runs them again)."""
        rundir.truncate_jsonl(self.path, lambda r: r.get("step", 0) <= steps_done)

    def before(self, step: int, sums: dict[str, torch.Tensor]) -> None:
        """Called before global ``step`` (0-based): remember the running ``sums`` if it is
        logged."""
        if step % self.every == 0 or step == self.setup.total_steps - 1:
            self._before = {k: v.detach().clone() for k, v in sums.items()}

    def after(self, step: int, tau: float, sums: dict[str, torch.Tensor]) -> None:
        """Called after global ``step``: record its loss terms and schedules if it is logged.
        The terms stay tensors on the device until ``flush``: logging adds no host sync."""
        if self._before is None:
            return
        s, b, p = sums, self._before, self.setup.program
        self._before = None
        with torch.no_grad():
            terms = {
                "loss": (s["loss"] - b["loss"]) / (s["steps"] - b["steps"]).clamp_min(1),
                "nll": (s["nll"] - b["nll"]) / (s["images"] - b["images"]).clamp_min(1),
                "kl": p.kl().detach() / self.setup.kl_n,
            }
        groups = self.setup.optimizer.param_groups
        self.rows.append(
            {
                "step": step + 1,
                "epoch": (step + 1) / self.setup.steps_per_epoch,
                **terms,
                "lr": groups[0]["lr"],
                "gate_lr": groups[1]["lr"] if len(groups) > 1 else None,
                "tau": tau,
            }
        )

    def flush(self) -> None:
        """Write the buffered rows (with each checkpoint, before it)."""
        if not self.rows:
            return
        rows = []
        for row in self.rows:
            row = {k: float(v) if isinstance(v, torch.Tensor) else v for k, v in row.items()}
            row["weight_prior"] = row["loss"] - row["nll"] - row["kl"]
            rows.append(row)
        rundir.append_jsonl(self.path, rows)
        self.rows = []
