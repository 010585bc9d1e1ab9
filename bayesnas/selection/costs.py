"""What a ranked row says about cost: the Pareto front, a latency estimate, the budget.

Every row gets ``pareto_flops`` and ``pareto_params`` (on the front of validation accuracy
against MFLOPs or M params among this call's candidates) and, where the space allows, a
``latency_ms_est`` (per-op times summed: an estimate, ``spaces/latency.py``). With a budget the
rows record it and how many draws were rejected.
"""

from __future__ import annotations

from typing import Any

from bayesnas.selection.budget import Budget, BudgetDraws
from bayesnas.selection.posterior import Posterior
from bayesnas.spaces.costs import arch_cost, pareto_front
from bayesnas.spaces.latency import latency_table


def with_costs(
    posterior: Posterior,
    rows: list[dict[str, Any]],
    budget: Budget,
    drawn: BudgetDraws | None,
) -> list[dict[str, Any]]:
    """``rows`` (ranked) with their Pareto flags, latency estimate and budget facts."""
    accuracy = [r["val_acc"] for r in rows]
    flops_front = pareto_front(accuracy, [r["mflops"] for r in rows])
    params_front = pareto_front(accuracy, [r["params_m"] for r in rows])
    net = posterior.program.net
    size = posterior.payload.get("dataset", {}).get("image_size") or posterior.config.input_size()
    table = latency_table(net, size)
    out = []
    for row, on_flops, on_params in zip(rows, flops_front, params_front, strict=True):
        row = {**row, "pareto_flops": on_flops, "pareto_params": on_params}
        if table is not None:
            arch = net.canonical(net.decode(row["encoding"]))
            row["latency_ms_est"] = arch_cost(*table, arch)
        if drawn is not None:
            row |= {
                "max_params_m": budget.max_params_m,
                "max_mflops": budget.max_mflops,
                "budget_drawn": drawn.drawn,
                "budget_rejected": drawn.rejected,
            }
        out.append(row)
    return out
