"""Figure 2b (nb201 with a non-flat architecture prior): the prior beside the posterior.

p(op | edge) is the zero-cost prior from training-free evidence, fixed before SVI; q(op | edge)
is where SVI took it. Both heatmaps share figure 2's op order, edge labels and 0..1 colour scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from bayesnas.report.series import op_matrix, prior_posterior
from bayesnas.report.style import heatmap, new_figure

KL_AXIS_MIN = 0.1  # nats: the KL axis is never shorter, so a negligible change looks negligible


def prior_posterior_figure(
    gates: dict[str, Any], prior_logits: np.ndarray, gate_logits: np.ndarray, prior: str, when: str
) -> Figure:
    """p(op | edge) beside q(op | edge) on one colour bar, each row's top op framed, and
    KL(q || p) per edge: what SVI changed of the prior, without a scale that could mislead.

    Edges and ops come from ``gates`` in figure 2's order; ``prior`` names the prior and
    ``when`` says how much SVI q has had, for the titles.
    """
    edges, ops, _ = op_matrix(gates)
    p, q, kl = prior_posterior(prior_logits, gate_logits)
    fig = new_figure(15, 4.8)
    prior_ax, q_ax, kl_ax = fig.subplots(1, 3, width_ratios=[1, 1, 0.45])
    heatmap(prior_ax, edges, ops, p)
    image = heatmap(q_ax, edges, ops, q)
    fig.colorbar(image, ax=[prior_ax, q_ax], label="p(op | edge) and q(op | edge)")
    prior_ax.set_title(f"Prior p(op | edge): {prior}\n(framed: top op)", fontsize=10)
    q_ax.set_title(f"Posterior q(op | edge) {when}\n(framed: top op)", fontsize=10)
    rows = np.arange(len(edges))
    bars = kl_ax.barh(rows, kl, color="C3")
    kl_ax.bar_label(bars, fmt="%.2g", fontsize=8, padding=2)
    kl_ax.set_ylim(prior_ax.get_ylim())  # row i beside the heatmaps' row i
    kl_ax.set_yticks(rows, [])
    kl_ax.set_xlim(0, max(KL_AXIS_MIN, 1.3 * float(kl.max())))
    kl_ax.set_xlabel("nats")
    kl_ax.grid(axis="x", alpha=0.3)
    kl_ax.set_title(f"KL(q || p) per edge\n(sum {kl.sum():.2g} nats)", fontsize=10)
    return fig
