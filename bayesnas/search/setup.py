"""What a search trains with, set up once by the ``Searcher``: its configuration, its place in
the job, the program and the optimizer. The search's step, saved state, reports and step log
take this (and the ``LoopState`` of ``bayesnas/loop.py``), not the Searcher itself."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bayesnas.config import SearchConfig
from bayesnas.distributed import Dist
from bayesnas.program import Program
from bayesnas.search import schedule


@dataclass(frozen=True)
class SearchSetup:
    """A search's fixed parts: ``weights`` are the model's trainable weights (q's gate logits
    aside), ``kl_n`` the N of Eq. 15, ``steps_per_epoch`` counted over the global batch."""

    config: SearchConfig
    dist: Dist
    device: torch.device
    program: Program
    optimizer: torch.optim.SGD
    weights: list[torch.nn.Parameter]
    kl_n: int
    steps_per_epoch: int

    @property
    def cuda(self) -> bool:
        """Whether the steps run on a GPU (in bfloat16 autocast there)."""
        return self.device.type == "cuda"

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def warmup_steps(self) -> int:
        """Steps in which q stays frozen while the weights train on draws from it."""
        return schedule.warmup_steps(self.config, self.total_steps)

    @property
    def learns_q(self) -> bool:
        """Whether q's gate logits are trained (the posterior sampler) or fixed."""
        return self.config.sampler == "posterior"
