"""How the darts search network computes a relaxed draw: which (cell kind, edge, op) run where.

The same plan as nb201's ``mixture_plan``, over the ``[B, 2, 14, 8]`` pair-gate values: one
device-to-host read per forward decides, per op, whether it runs on the whole batch, on a few
examples, or not at all.
"""

from __future__ import annotations

import torch

from bayesnas.spaces.darts.genotype import CELL_KINDS, OPS
from bayesnas.spaces.darts.ops import EDGES

MIXTURE_FLOOR = 1e-3  # a relaxed weight below this does not make an example compute its op
SUBSET_FRACTION = 0.25  # an op needed by at most this share of a batch runs on those alone
ALL, ONLY, NO_ROWS = "all", "only", "none"
Rows = torch.Tensor | str


def mixture_plan(gates: torch.Tensor) -> list[list[list[Rows]]]:
    """How each (cell kind, edge, op) of a relaxed draw ``[B, 2, 14, 8]`` is computed.

    As nb201's plan: on the whole batch with each example's weight when more than
    SUBSET_FRACTION of the examples weigh it at >= MIXTURE_FLOOR, on those few examples alone
    otherwise, not at all when none does, and unweighted when its weight is 1 for every example.
    The counts are the one device-to-host read of a forward."""
    keep = gates > MIXTURE_FLOOR
    counts, ones = torch.stack((keep.sum(0), (gates == 1).all(0).long())).tolist()
    batch, order = gates.shape[0], None
    plan = []
    for kind in range(len(CELL_KINDS)):
        rows: list[list[Rows]] = []
        for edge in range(len(EDGES)):
            row: list[Rows] = [NO_ROWS]
            for op in range(1, len(OPS)):
                count = counts[kind][edge][op]
                if count == 0:
                    row.append(NO_ROWS)
                elif ones[kind][edge][op]:
                    row.append(ONLY)
                elif count > SUBSET_FRACTION * batch:
                    row.append(ALL)
                else:
                    if order is None:  # examples that compute an op first: no further reads
                        order = torch.sort((~keep).to(torch.uint8), dim=0, stable=True).indices
                    row.append(order[:count, kind, edge, op])
            rows.append(row)
        plan.append(rows)
    return plan
