"""Op importance by removal (Zero-Cost-PT, Xiang et al. 2023): on a freshly initialised
super-network, take one op out of an edge's mixture and see how much a training-free proxy drops.

Edges are decided one at a time in a random order, as in the reference code's ``pt_project``:
every undecided edge mixes its ops with equal weights, a decided edge keeps only its best op, and
the op whose removal lowers the proxy most is the edge's best. The evidence of an edge is the
z-score of that drop over its ops; it is averaged over initialisations, batches and orders.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
from tqdm import tqdm

from bayesnas.priors.proxies import Proxy
from bayesnas.spaces import SuperNet


def _z_scores(drops: torch.Tensor) -> torch.Tensor:
    """Standardised drops of one edge (0 where every op scores alike); -inf scores rank last."""
    finite = drops.isfinite()
    if finite.any():
        floor = drops[finite].min() - 1.0
        drops = torch.where(finite, drops, floor)  # a removal that breaks the proxy: least useful
    spread = drops.std(unbiased=False)
    if not spread > 1e-9:
        return torch.zeros_like(drops)
    return (drops - drops.mean()) / spread


def removal_evidence(
    make_net: Callable[[], SuperNet],
    batches: Sequence[torch.Tensor],
    proxy: Proxy,
    repeats: int,
    seed: int,
    show_progress: bool = True,
) -> torch.Tensor:
    """Mean per-(edge, op) z-score of the proxy's drop when the op is removed, over ``repeats``
    fresh initialisations (repeat r: its own seed, edge order and batch ``r % len(batches)``).

    Runs under its own random state, so the caller's random streams are untouched."""
    total: torch.Tensor | None = None
    bar = tqdm(
        total=repeats, desc="zero-cost prior", unit="init", disable=None if show_progress else True
    )
    with torch.random.fork_rng(devices=[]):
        for repeat in range(repeats):
            torch.manual_seed(seed * 1009 + repeat)
            net = make_net().eval()
            evidence = _one_pass(net, batches[repeat % len(batches)], proxy)
            total = evidence if total is None else total + evidence
            bar.update(1)
    bar.close()
    assert total is not None
    return total / repeats


def _one_pass(net: SuperNet, images: torch.Tensor, proxy: Proxy) -> torch.Tensor:
    """One initialisation: decide the edges in a random order; the z-scores of each edge."""
    shape = net.layout.shape
    ops = shape[-1]
    edges = math.prod(shape[:-1])
    device = images.device
    net.to(device)
    weights = torch.full((edges, ops), 1.0 / ops, device=device)
    evidence = torch.zeros(edges, ops)
    for edge in torch.randperm(edges).tolist():
        scores = torch.empty(ops, dtype=torch.float64)
        for op in range(ops):
            trial = weights.clone()
            trial[edge, op] = 0.0
            gates = trial.view(shape).expand(len(images), *shape)
            scores[op] = proxy(functools.partial(net, gates=gates), net, images, True)
        z = _z_scores(-scores).float()  # a lower score without the op: the op matters more
        evidence[edge] = z
        weights[edge] = torch.nn.functional.one_hot(z.argmax(), ops).float()
    return evidence.view(shape)
