"""How a relaxed nb201 draw is computed in a batch: per (edge, op), on every example with its
own weight, on the few examples that need it, unweighted, or not at all (docs/architecture.md,
"The mixture's cost")."""

from __future__ import annotations

from collections.abc import Callable

import torch

from bayesnas.spaces.nb201.cell import EDGES, NONE, OPS

MIXTURE_FLOOR = 1e-3  # a relaxed weight below this does not make an example compute its op
SUBSET_FRACTION = 0.25  # an op needed by at most this share of a batch runs on those alone
ALL, ONLY, NO_ROWS = "all", "only", "none"  # how an op is computed, besides on some rows
Rows = torch.Tensor | str


def mixture_plan(
    gates: torch.Tensor, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> list[list[Rows]]:
    """How each (edge, op) of a relaxed draw is computed in a batch.

    An op is computed on the whole batch, with every example's own relaxed weight, when more
    than SUBSET_FRACTION of the examples give it a weight of at least MIXTURE_FLOOR: batched
    convolutions cost far less than gathering examples (docs/benchmarks.md). It is computed on
    the few examples that need it when at most that share do, and skipped when none does, so a
    sharp q costs about what its sub-network costs. An op whose weight is exactly 1 for every
    example (its edge's other ops pruned from q) is used as it is, with no weight to apply.
    The counts are the one device-to-host read of a forward.

    ``reduce`` (a sum over the ranks of a data-parallel search) makes the decision from the
    global batch's counts, so that every rank computes the same ops, as one process would on
    that batch (a rank may then compute a few-examples op on none of its own examples).
    """
    keep = gates > MIXTURE_FLOOR
    kept = keep.sum(0)
    local = torch.stack((kept, (gates == 1).sum(0), torch.full_like(kept, len(gates))))
    stats = local if reduce is None else torch.cat((local, reduce(local.clone())))
    counts, ones, batches, *whole = stats.tolist()
    decide_counts, decide_ones, decide_batches = whole or (counts, ones, batches)
    order = None
    plan: list[list[Rows]] = []
    for edge in range(len(EDGES)):
        row: list[Rows] = []
        for op in range(len(OPS)):
            count, batch = decide_counts[edge][op], decide_batches[edge][op]
            if op == NONE or count == 0:
                row.append(NO_ROWS)
            elif decide_ones[edge][op] == batch:
                row.append(ONLY)
            elif count > SUBSET_FRACTION * batch:
                row.append(ALL)
            else:
                if order is None:  # examples that compute an op first, in order: no more reads
                    order = torch.sort((~keep).to(torch.uint8), dim=0, stable=True).indices
                row.append(order[: counts[edge][op], edge, op])
        plan.append(row)
    return plan


def support_plan(gate_logits: torch.Tensor) -> list[list[Rows]]:
    """The plan of every draw from q at once, read from q's support (one host read, not one
    per forward): each op q can draw runs on the whole batch with its per-example weight, the
    exact relaxed (or, for one-hot draws, exact) mixture; the one op left on an edge runs
    unweighted; 'none' and pruned ops (probability exactly 0) not at all. Fixed until pruning
    changes the support, so a step that uses it has static shapes (``bayesnas/capture.py``)."""
    support = (torch.softmax(gate_logits.detach().float(), -1) > 0).tolist()
    plan: list[list[Rows]] = []
    for possible in support:
        ops = [op for op in range(len(OPS)) if possible[op] and op != NONE]
        only = len(ops) == 1 and not possible[NONE]
        plan.append([(ONLY if only else ALL) if op in ops else NO_ROWS for op in range(len(OPS))])
    return plan
