"""The nb201 mixture as it was before the batched plan (kept only to pin the new one against).

Every op an example weighs at >= 1e-3 was computed on exactly those examples (gathered, then
scattered back with index_add), so BatchNorm saw only them.
"""

from __future__ import annotations

import torch

from bayesnas.spaces.nb201.cell import CONV1, CONV3, EDGES, NONE, OPS, POOL, SKIP

FLOOR = 1e-3


def rows_per_op(gates: torch.Tensor, floor: float = FLOOR) -> list[list]:
    keep = gates > floor
    counts = keep.sum(0).tolist()
    order = torch.sort((~keep).to(torch.uint8), dim=0, stable=True).indices
    batch, rows = gates.shape[0], []
    for edge in range(len(EDGES)):
        row = []
        for op in range(len(OPS)):
            if op == NONE or counts[edge][op] == 0:
                row.append("none")
            elif counts[edge][op] == batch:
                row.append("all")
            else:
                row.append(order[: counts[edge][op], edge, op])
        rows.append(row)
    return rows


def cell_forward(cell, x: torch.Tensor, weights: torch.Tensor, rows: list[list]) -> torch.Tensor:
    weights = weights.to(x.dtype)
    nodes, pooled = [x], [cell.pool(x)]
    for node in (1, 2, 3):
        total = torch.zeros_like(x)
        for edge, (to, src) in enumerate(EDGES):
            if to != node:
                continue
            for op in (SKIP, CONV1, CONV3, POOL):
                index = rows[edge][op]
                if isinstance(index, str) and index == "all":
                    w = weights[:, edge, op].view(-1, 1, 1, 1)
                    total = total + w * cell.apply_op(edge, op, nodes[src], pooled[src])
                elif not isinstance(index, str):
                    w = weights[index, edge, op].view(-1, 1, 1, 1)
                    out = cell.apply_op(edge, op, nodes[src][index], pooled[src][index])
                    total = total.index_add(0, index, (w * out).to(total.dtype))
        nodes.append(total)
        if node < 3:
            pooled.append(cell.pool(total))
    return nodes[3]


def net_forward(net, images: torch.Tensor, gates: torch.Tensor, floor: float = FLOOR):
    rows = rows_per_op(gates.detach(), floor)
    return net._run(images, lambda cell, x: cell_forward(cell, x, gates, rows))
