"""The PGNAS model: an architecture prior, a Gaussian weight prior and a categorical likelihood.

Written so that (1/N) x the negative ELBO under the variational-dropout guide is the paper's
Eq. 15 (METHOD.md): the gate site and the gated weight prior sit in ``poutine.scale(1/N)``
inside the subsampled data plate, so both are counted once per data set of size N.
The architecture prior is the paper's flat one, or logits per gate element: (``--cost``)
p(arch) proportional to exp(-lambda * cost(arch)) with an additive cost (``spaces/costs.py``),
and/or (``--arch-prior zero-cost``) training-free evidence (``bayesnas/priors``).
A likelihood temperature T > 1 scales the gate site by T/N instead of 1/N: the architecture's
posterior is then p(arch) p(D | arch)^(1/T) (a tempered likelihood); the weights see Eq. 15.
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn

from bayesnas.spaces.base import SuperNet

ARCH_SITE = "arch"  # the one sample site holding every gate of the super-network


class SuperNetModel(nn.Module):
    """p(gates) p(weights) p(labels | images, gates, weights) over a super-network.

    The weights are parameters (a point-mass guide), so their Gaussian prior of length scale
    ``l`` enters as ``pyro.factor`` terms: -l^2/2 * a_k ||m_k||^2 for gated weights at the
    drawn gates, -l^2/2 ||m||^2 for the rest.

    A plain ``nn.Module`` on purpose: as a ``PyroModule`` every access to ``self.net`` records
    each of its weights as a param site, which cost ~190 ms per step at nb201 C=16 N=5 on CPU
    (docs/benchmarks.md); the weights are point estimates, so nothing is gained by that.
    """

    def __init__(
        self,
        net: SuperNet,
        num_data: int,
        prior_l2: float,
        prior_logits: torch.Tensor | None = None,
        temperature: float = 1.0,
    ):
        super().__init__()
        self.net = net
        self.num_data = int(num_data)
        self.prior_l2 = float(prior_l2)
        self.temperature = float(temperature)
        self.last_logits: torch.Tensor | None = None  # latest forward's logits, for train accuracy
        # the prior's logits per gate element (cost-aware and/or zero-cost); None: the paper's
        self.prior_logits: torch.Tensor | None
        self.register_buffer("prior_logits", prior_logits, persistent=False)

    def arch_prior(self, batch: int, device: torch.device) -> dist.TorchDistribution:
        """p(architecture) for ``batch`` draws: the paper's flat prior, or the cost-aware one."""
        return self.net.layout.prior(batch, device, torch.float32, self.prior_logits)

    def forward(
        self,
        images: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Score a batch; without images, draw one architecture from the prior only (Predictive)."""
        batch = 1 if images is None else images.shape[0]
        device = next(self.net.parameters()).device
        subsample = torch.arange(batch, device=device)
        with pyro.plate("data", self.num_data, subsample=subsample):
            with poutine.scale(scale=self.temperature / self.num_data):
                gates = pyro.sample(ARCH_SITE, self.arch_prior(batch, device))
            if images is None:
                return gates
            with poutine.scale(scale=1.0 / self.num_data):
                sq_norms = self.net.gated_sq_norms().flatten()
                penalty = gates.flatten(1).to(sq_norms.dtype) @ sq_norms
                pyro.factor("gated_weight_prior", -0.5 * self.prior_l2 * penalty)
            logits = self.net(images, gates)
            self.last_logits = logits.detach()
            # labels are checked when the data set is read; validating them here would read a
            # flag back from the GPU at every step
            likelihood = dist.Categorical(logits=logits.float(), validate_args=False)
            pyro.sample("labels", likelihood, obs=labels)
        pyro.factor("weight_prior", -0.5 * self.prior_l2 * self.net.ungated_sq_norm())
        return logits
