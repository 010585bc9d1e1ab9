"""The Pyro program of a search: super-network, model, guide and the SVI loss, built from config."""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch
from pyro.infer import TraceMeanField_ELBO
from torch.distributions import kl_divergence

from bayesnas.config import SearchConfig
from bayesnas.guides import VariationalDropoutGuide
from bayesnas.models import SuperNetModel
from bayesnas.spaces import SuperNet, create_space


@dataclass
class Program:
    """A super-network with its Pyro model and guide; ``loss`` is Eq. 15 (-ELBO / N)."""

    net: SuperNet
    model: SuperNetModel
    guide: VariationalDropoutGuide
    elbo: torch.nn.Module  # pyro ELBOModule: elbo(images, labels) is the negative ELBO

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.elbo(images, labels) / self.model.num_data

    def kl(self) -> torch.Tensor:
        """KL(q(arch) || p(arch)) of one architecture draw, the KL term of Eq. 15 times N."""
        device = self.guide.gate_logits.device
        q = self.guide.posterior(1)
        p = self.net.layout.prior(1, device, torch.float32)
        return kl_divergence(q, p).sum()

    def mode(self) -> torch.Tensor:
        """The most probable architecture under q."""
        return self.net.mode(self.guide.gate_logits.detach())


def build_program(
    config: SearchConfig, num_classes: int, in_channels: int, num_data: int
) -> Program:
    """Build the program for ``config``; ``num_data`` is the N that scales the KL (Eq. 15)."""
    pyro.settings.set(module_local_params=True)
    net = create_space(
        config.space, num_classes=num_classes, in_channels=in_channels, **config.space_options
    )
    model = SuperNetModel(net, num_data, config.prior_l2)
    guide = VariationalDropoutGuide(
        net.layout, net.init_gate_logits(config.init_drop), num_data, config.tau
    )
    if config.sampler == "uniform":  # single-path one-shot: exact uniform draws, q never moves
        guide.gate_logits.requires_grad_(False)
        guide.gate_logits.data.zero_()
        guide.relaxed = False
    elbo = TraceMeanField_ELBO(max_plate_nesting=1)(model, guide)
    return Program(net, model, guide, elbo)
