"""The variational-dropout guide: q(gates) with learnable drop probabilities (METHOD.md Eq. 11-13).

Weights are parameters shared with the model (the point-mass part of phi = m * eps); the guide
owns only the gate logits. It draws Concrete-relaxed gates in training and exact ones otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyro
import torch
from pyro import poutine
from pyro.nn import PyroModule
from torch import nn

from bayesnas.gates import GateLayout
from bayesnas.models import ARCH_SITE


class VariationalDropoutGuide(PyroModule):
    """q(eps) = prod Bernoulli(1 - p_g) per channel, or one categorical per edge.

    ``gate_logits`` are keep-logits per group (Bernoulli) or op logits per edge (categorical).
    One gate vector is drawn per example, as the paper's training draws one mask per example.
    """

    def __init__(
        self,
        layout: GateLayout,
        init_logits: torch.Tensor,
        num_data: int,
        temperature: float = 0.2,
        kl_temperature: float = 1.0,
    ):
        super().__init__()
        self.layout = layout
        self.num_data = int(num_data)
        self.temperature = float(temperature)
        self.kl_temperature = float(kl_temperature)  # the model's likelihood temperature T
        self.relaxed = True
        self.shared_exact = False  # exact draws: one path for the whole batch (weight warm-up)
        self.gate_logits = nn.Parameter(init_logits.clone())

    def forward(
        self,
        images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch = 1 if images is None else images.shape[0]
        subsample = torch.arange(batch, device=self.gate_logits.device)
        scale = poutine.scale(scale=self.kl_temperature / self.num_data)
        with pyro.plate("data", self.num_data, subsample=subsample), scale:
            return pyro.sample(ARCH_SITE, self.posterior(batch))

    def posterior(self, batch: int = 1) -> pyro.distributions.TorchDistribution:
        """q(gates) for ``batch`` independent draws (relaxed or exact as currently set)."""
        return self.layout.distribution(
            self.gate_logits,
            batch,
            self.temperature,
            hard=not self.relaxed,
            shared=self.shared_exact and not self.relaxed,
        )

    @contextmanager
    def exact(self) -> Iterator[None]:
        """Draw exact (unrelaxed) gates inside this block, e.g. for ``Predictive``."""
        previous = self.relaxed, self.shared_exact
        self.relaxed, self.shared_exact = False, False
        try:
            yield
        finally:
            self.relaxed, self.shared_exact = previous
