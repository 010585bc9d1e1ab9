"""Op importance by removal (Zero-Cost-PT, Xiang et al. 2023): on a freshly initialised
super-network, take one op out of an edge's mixture and see how much a training-free proxy drops.

Edges are decided one at a time in a random order, as in the reference code's ``pt_project``:
every undecided edge mixes its ops with equal weights, a decided edge keeps only its best op, and
the op whose removal lowers the proxy most is the edge's best. The evidence of an edge is the
z-score of that drop over its ops; it is averaged over initialisations, batches and orders.

Pair gates (DARTS genotypes) also choose each node's two inputs. As the reference code's DARTS
projection does, the ops are decided first (columns 1..), then per node in a random order each
incoming edge is removed whole: the z-score of its drop over the node's inputs is the edge's
keep evidence (column 0, the pair gate's keep logit), and the node keeps its two best edges.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch

from bayesnas import progress
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
    bar = progress.bar(repeats, "zero-cost prior", "init", show_progress)
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
    """One initialisation: decide the edges (and with pair gates the inputs) in a random order;
    the z-scores of each edge."""
    shape = net.layout.shape
    pairs = net.layout.kind == "pairs"
    first = 1 if pairs else 0  # pair gates: column 0 is the edge's 'none' (dropped) share
    ops = shape[-1] - first
    edges = math.prod(shape[:-1])
    net.to(images.device)
    weights = torch.zeros(edges, shape[-1], device=images.device)
    weights[:, first:] = 1.0 / ops
    evidence = torch.zeros(edges, shape[-1])

    def score(trial: torch.Tensor) -> float:
        gates = trial.view(shape).expand(len(images), *shape)
        return proxy(functools.partial(net, gates=gates), net, images, True)

    for edge in torch.randperm(edges).tolist():
        scores = torch.empty(ops, dtype=torch.float64)
        for op in range(ops):
            trial = weights.clone()
            trial[edge, first + op] = 0.0
            scores[op] = score(trial)
        z = _z_scores(-scores).float()  # a lower score without the op: the op matters more
        evidence[edge, first:] = z
        weights[edge, first:] = torch.nn.functional.one_hot(z.argmax(), ops).float()
    if pairs:
        _decide_inputs(net, weights, evidence, score)
    return evidence.view(shape)


def _decide_inputs(
    net: SuperNet,
    weights: torch.Tensor,
    evidence: torch.Tensor,
    score: Callable[[torch.Tensor], float],
) -> None:
    """Pair gates: per (cell kind, node) in a random order, the z-score of the drop when each
    incoming edge is removed whole goes to column 0; the node then keeps its two best edges."""
    structure = net.layout.structure  # type: ignore[attr-defined]
    kinds, per_kind = net.layout.shape[0], structure.edges
    nodes = [(kind, node) for kind in range(kinds) for node in structure.node_slices()]
    for index in torch.randperm(len(nodes)).tolist():
        kind, node = nodes[index]
        edges = torch.arange(per_kind)[node] + kind * per_kind
        scores = torch.empty(len(edges), dtype=torch.float64)
        for i, edge in enumerate(edges.tolist()):
            trial = weights.clone()
            trial[edge] = 0.0
            trial[edge, 0] = 1.0
            scores[i] = score(trial)
        z = _z_scores(-scores).float()
        evidence[edges, 0] = z
        dropped = edges[z.argsort(descending=True)[2:]]
        weights[dropped] = 0.0
        weights[dropped, 0] = 1.0
