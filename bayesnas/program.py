"""The Pyro program of a search: super-network, model, guide and the SVI loss, built from config."""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import torch
from pyro import poutine
from pyro.distributions.util import scale_and_mask
from pyro.infer import TraceMeanField_ELBO
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import kl_divergence

from bayesnas.config import SearchConfig
from bayesnas.guides import VariationalDropoutGuide
from bayesnas.models import SuperNetModel
from bayesnas.spaces import SuperNet, create_space
from bayesnas.spaces.costs import gate_costs


class DeviceMeanFieldELBO(TraceMeanField_ELBO):
    """Pyro's mean-field ELBO (analytic KL per latent site) with the loss kept on the device.

    The parent reads the loss back to the host three times a step (two ``.item()`` calls and a
    NaN check that also hooks the backward pass), and its traces compute the log-density of
    every site, latent ones too. On a GPU each read stalls the queue and each unused density
    costs kernels. Every latent site here is reparametrised with an analytic KL, so a particle's
    ELBO is the observed sites' log-densities minus the scaled KLs, summed on the device; the
    search checks the loss for NaN once per epoch instead. A test pins equality with the parent.
    """

    def _get_trace(self, model, guide, args, kwargs):
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
            *args, **kwargs
        )
        return prune_subsample_sites(model_trace), guide_trace

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss: torch.Tensor | float = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo = 0.0
            for name, site in model_trace.nodes.items():
                if site["type"] != "sample":
                    continue
                if site["is_observed"]:
                    log_p = site["fn"].log_prob(site["value"])
                    elbo = elbo + scale_and_mask(log_p, site["scale"], site["mask"]).sum()
                    continue
                q = guide_trace.nodes[name]  # scaled as the guide's site, as Pyro does
                kl = kl_divergence(q["fn"], site["fn"])
                elbo = elbo - scale_and_mask(kl, scale=q["scale"], mask=q["mask"]).sum()
            loss = loss - elbo / self.num_particles
        return torch.as_tensor(loss)


@dataclass
class Program:
    """A super-network with its Pyro model and guide; ``loss`` is Eq. 15 (-ELBO / N)."""

    net: SuperNet
    model: SuperNetModel
    guide: VariationalDropoutGuide
    elbo: torch.nn.Module  # pyro ELBOModule: elbo(images, labels) is the negative ELBO

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Eq. 15 on a batch. Pyro's validation is off here: its NaN/inf checks read each site's
        log-probability back to the host, a GPU stall each (the tests run it with validation on)."""
        with pyro.validation_enabled(False):
            return self.elbo(images, labels) / self.model.num_data

    def kl(self) -> torch.Tensor:
        """KL(q(arch) || p(arch)) of one architecture draw, the KL term of Eq. 15 times N."""
        device = self.guide.gate_logits.device
        q = self.guide.posterior(1)
        p = self.model.arch_prior(1, device)
        return kl_divergence(q, p).sum()

    def mode(self) -> torch.Tensor:
        """The most probable architecture under q."""
        return self.net.mode(self.guide.gate_logits.detach())


def cost_prior_logits(
    net: SuperNet, config: SearchConfig, image_size: int | None = None
) -> torch.Tensor | None:
    """Logits of p(arch) proportional to exp(-lambda * cost(arch)) per gate element: for a
    categorical edge -lambda * cost of each op (softmax-normalised by the gate), for a Bernoulli
    gate the keep-logit -lambda * cost of keeping it. None (the paper's prior) when off."""
    if config.cost is None or config.cost_weight == 0:
        return None
    _, per_gate = gate_costs(net, config.cost, image_size or config.input_size())
    return -config.cost_weight * per_gate


def build_program(
    config: SearchConfig,
    num_classes: int,
    in_channels: int,
    num_data: int,
    image_size: int | None = None,
    evidence_logits: torch.Tensor | None = None,
) -> Program:
    """Build the program for ``config``; ``num_data`` is the N that scales the KL (Eq. 15);
    ``image_size`` (the data's, when config alone cannot know it: an image folder) prices the
    cost-aware prior; ``evidence_logits`` (``bayesnas.priors``) are the zero-cost prior's, which
    the guide starts from. Priors multiply: their logits add."""
    pyro.settings.set(module_local_params=True)
    net = create_space(
        config.space, num_classes=num_classes, in_channels=in_channels, **config.space_options
    )
    prior_logits = cost_prior_logits(net, config, image_size)
    init_logits = net.init_gate_logits(config.init_drop)
    if evidence_logits is not None:
        evidence_logits = evidence_logits.to(init_logits)
        prior_logits = evidence_logits if prior_logits is None else prior_logits + evidence_logits
        init_logits = evidence_logits.clone()
    temperature = config.likelihood_temperature
    model = SuperNetModel(net, num_data, config.prior_l2, prior_logits, temperature)
    guide = VariationalDropoutGuide(net.layout, init_logits, num_data, config.tau, temperature)
    if config.sampler == "uniform":  # single-path one-shot: exact uniform draws, q never moves
        guide.gate_logits.requires_grad_(False)
        guide.gate_logits.data.zero_()
        guide.relaxed = False
    elbo = DeviceMeanFieldELBO(max_plate_nesting=1)(model, guide)
    return Program(net, model, guide, elbo)
