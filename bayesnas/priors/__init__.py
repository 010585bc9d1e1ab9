"""Architecture priors p(arch): the paper's flat one, or one from training-free evidence.

``arch_prior_logits`` is the seam: each named prior returns per-gate-element logits (or None
for the flat prior) that the Pyro model uses as the categorical prior of its gate site, and
that the guide starts from. The zero-cost prior is ``strength`` x the mean z-score of each op's
removal evidence (``removal.py``) under a training-free proxy (``proxies.py``), computed on a
few batches of the search's own training split before SVI starts (docs/architecture.md).
"""

from __future__ import annotations

import torch

from bayesnas.config import SearchConfig
from bayesnas.data.batches import Batches
from bayesnas.data.sources import DatasetInfo
from bayesnas.errors import UserError
from bayesnas.priors.proxies import PROXIES, get_proxy
from bayesnas.priors.removal import removal_evidence
from bayesnas.spaces import SuperNet, create_space

__all__ = ["PROXIES", "arch_prior_logits", "fresh_network", "zero_cost_evidence"]


def fresh_network(
    config: SearchConfig, num_classes: int, channels: int, device: torch.device
) -> SuperNet:
    """A newly initialised super-network of the search's space (with ``--prior-cells``, that
    many cells), in eval mode as the proxies' reference code scores it (the caller seeds the
    initialisation)."""
    options = dict(config.space_options)
    if config.prior_cells is not None:
        options["cells"] = config.prior_cells
    net = create_space(config.space, num_classes=num_classes, in_channels=channels, **options)
    return net.to(device).eval()


def zero_cost_evidence(
    config: SearchConfig,
    train_data: Batches,
    info: DatasetInfo,
    device: torch.device,
    show_progress: bool = True,
) -> torch.Tensor:
    """Mean z-scored removal evidence per (edge, op) of the search's space, ``layout.shape``."""
    batches = []
    for images, _ in train_data.eval_batches(config.prior_batch):
        if len(images) == config.prior_batch:
            batches.append(images.to(device))
        if len(batches) == config.prior_repeats:
            break
    if not batches:
        raise UserError(
            f"--prior-batch {config.prior_batch} is larger than the search's training split "
            f"({len(train_data)} images): use a smaller --prior-batch"
        )

    def make_net() -> SuperNet:
        return fresh_network(config, info.num_classes, info.channels, device)

    proxy = get_proxy(config.prior_proxy)
    return removal_evidence(
        make_net, batches, proxy, config.prior_repeats, config.seed, show_progress
    )


def arch_prior_logits(
    config: SearchConfig,
    train_data: Batches,
    info: DatasetInfo,
    device: torch.device,
    show_progress: bool = True,
) -> torch.Tensor | None:
    """Logits of p(arch) per gate element for ``config.arch_prior``; None: the flat prior."""
    if config.arch_prior == "uniform":
        return None
    evidence = zero_cost_evidence(config, train_data, info, device, show_progress)
    return config.prior_strength * evidence.cpu()
