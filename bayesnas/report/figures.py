"""Figures 1-3 of a run's posterior diagnostics; figure 2b re-exported from ``prior_figure``,
figures 4-5 from ``candidates``.

Every ``*_figure`` function builds a ``matplotlib.figure.Figure`` without pyplot (no global
state, no display); ``savefig`` renders it with Agg. The arrays are
``bayesnas.report.series``'s, re-exported here with the shared ``style``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure, SubFigure
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from bayesnas.report.candidates import (
    SAMPLER_COLORS,
    SAMPLER_LINES,
    SAMPLER_MARKERS,
    cost_figure,
    samples_figure,
)
from bayesnas.report.decision import when_q_decided
from bayesnas.report.prior_figure import prior_posterior_figure
from bayesnas.report.series import (
    TOP_K,
    Row,
    best_of_k,
    drop_fractions,
    entropy_history,
    is_cell_space,
    keep_probabilities,
    op_history,
    op_matrix,
    prior_posterior,
    series,
    top_k,
    unit_names,
)
from bayesnas.report.style import OP_LABELS, STAGE_COLORS, heatmap, new_figure, stage_color

__all__ = [
    "OP_LABELS",
    "SAMPLER_COLORS",
    "SAMPLER_LINES",
    "SAMPLER_MARKERS",
    "STAGE_COLORS",
    "TOP_K",
    "best_of_k",
    "cell_posterior_figure",
    "cost_figure",
    "drop_fractions",
    "entropy_figure",
    "entropy_history",
    "group_posterior_figure",
    "is_cell_space",
    "keep_probabilities",
    "new_figure",
    "op_history",
    "op_matrix",
    "prior_posterior",
    "prior_posterior_figure",
    "samples_figure",
    "series",
    "stage_color",
    "top_k",
    "training_figure",
    "unit_names",
]


def _epoch_axis(ax: Axes) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _plain(ax: Axes) -> None:
    """Plain tick labels on a linear y axis: no offset or x1e-5 multiplier text, which would
    make a small change look dramatic."""
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)


def _legend_below(ax: Axes, handles: list[Any]) -> None:
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, fontsize=9)


def _positive(values: np.ndarray) -> np.ndarray:
    """``values`` with what a log axis cannot show (<= 0) as NaN."""
    return np.where(values > 0, values, math.nan)


def training_figure(metrics: list[Row], steps: list[Row] | None = None) -> Figure:
    """Figure 1: the objective and its terms, the schedules, and the accuracies.

    With steps.jsonl (``steps``) the loss terms and schedules are drawn per logged step, so a
    cosine learning rate and an annealed tau show their shape; the loss terms share one log
    axis in nats per image, so that KL/N, orders of magnitude below the NLL, is visible without
    a rescaled axis. Epoch means from metrics.jsonl are the markers.
    """
    epoch = series(metrics, "epoch")
    fig = new_figure(15, 4.8)
    loss_ax, sched_ax, acc_ax = fig.subplots(1, 3)
    terms = (
        ("elbo", "-ELBO (loss)", "C0"),
        ("nll", "NLL", "C1"),
        ("kl", "KL(q || p) / N", "C3"),
        ("weight_prior", "weight prior / N", "C2"),
    )
    lines = []
    for key, label, color in terms:
        values = -series(metrics, key) if key == "elbo" else series(metrics, key)
        if steps:
            x = series(steps, "epoch")
            per_step = series(steps, "loss" if key == "elbo" else key)
            lines += loss_ax.plot(x, _positive(per_step), "-", lw=1, color=color, label=label)
            loss_ax.plot(epoch, _positive(values), "o", ms=4, color=color)
        else:
            lines += loss_ax.plot(epoch, _positive(values), "o-", color=color, label=label)
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("nats per image (log scale)")
    where = "lines: per step; dots: epoch means" if steps else "per epoch"
    loss_ax.set_title(f"Objective (Eq. 15) and its terms ({where})", fontsize=10)
    _legend_below(loss_ax, lines)
    _epoch_axis(loss_ax)

    if steps:
        x, lr = series(steps, "epoch"), series(steps, "lr")
        gate_lr, tau = series(steps, "gate_lr"), series(steps, "tau")
        sched_ax.set_title("Schedules (per step)")
    else:
        x, lr, gate_lr, tau = epoch, series(metrics, "lr"), None, series(metrics, "tau")
        sched_ax.set_title("Schedules (at epoch ends)")
    lines = sched_ax.plot(x, lr, "-", label="learning rate (weights)")
    if gate_lr is not None and np.isfinite(gate_lr).any():
        lines += sched_ax.plot(x, gate_lr, "-.", color="C2", label="learning rate (gates)")
    sched_ax.set_ylabel("learning rate")
    sched_ax.set_ylim(bottom=0)
    _plain(sched_ax)
    tau_ax = sched_ax.twinx()
    lines += tau_ax.plot(x, tau, "--", color="C1", label="tau (right axis)")
    tau_ax.set_ylabel("Concrete temperature tau", color="C1")
    tau_ax.set_ylim(bottom=0)
    _plain(tau_ax)
    _legend_below(sched_ax, lines)
    _epoch_axis(sched_ax)

    lines = acc_ax.plot(epoch, 100 * series(metrics, "train_acc"), "o-", label="train (relaxed)")
    val = series(metrics, "val_acc")
    label = "validation (mode)" + ("; gaps: no mode yet" if np.isnan(val).any() else "")
    lines += acc_ax.plot(epoch, 100 * val, "s-", label=label)
    acc_ax.set_ylabel("accuracy (%)")
    _plain(acc_ax)
    _legend_below(acc_ax, lines)
    acc_ax.set_title("Accuracy (per epoch)")
    _epoch_axis(acc_ax)
    return fig


def cell_posterior_figure(metrics: list[Row], gates: dict[str, Any], when: str) -> Figure:
    """Figure 2 (nb201): q(op | edge) at the end as a heatmap, and its evolution per edge."""
    edges, ops, probs = op_matrix(gates)
    fig = new_figure(15, 5.2)
    left, right = cast(Sequence[SubFigure], fig.subfigures(1, 2, width_ratios=[1, 1.5]))
    ax = left.subplots()
    image = heatmap(ax, edges, ops, probs, gates.get("mode_ops"))
    left.colorbar(image, ax=ax, label="q(op | edge)")
    ax.set_title(f"Architecture posterior {when} (framed: mode)")
    axes = right.subplots(2, 3, sharex=True, sharey=True)
    if metrics:
        epoch, history = series(metrics, "epoch"), op_history(metrics)
        for e, ax in enumerate(axes.flat):
            for o, op in enumerate(ops):
                ax.plot(epoch, history[:, e, o], "o-", ms=3, label=OP_LABELS.get(op, op))
            ax.set_title(f"edge {edges[e].replace('<-', ' <- ')}", fontsize=10)
            _epoch_axis(ax)
        for ax in axes[0]:
            ax.set_xlabel("")
        for ax in axes[:, 0]:
            ax.set_ylabel("q(op)")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        right.legend(handles, labels, loc="outside lower center", ncols=len(ops), fontsize=9)
    shown = f" (edges 1-{axes.size} of {len(edges)})" if len(edges) > axes.size else ""
    right.suptitle(f"Evolution over epochs{shown}", fontsize=11)
    return fig


def group_posterior_figure(gates: dict[str, Any], when: str) -> Figure:
    """Figure 2 (resnet): keep probability per group, their histogram, and what is dropped."""
    names, keep, _ = keep_probabilities(gates)
    fig = new_figure(15, 4.8)
    bar_ax, hist_ax, drop_ax = fig.subplots(1, 3, width_ratios=[3, 1.2, 1.3])
    bars = bar_ax.bar(range(len(names)), keep, color=[stage_color(n) for n in names])
    if len(names) <= 24:
        bar_ax.bar_label(bars, fmt="%.2f", fontsize=8)
    bar_ax.axhline(0.5, color="grey", ls="--", lw=1)
    bar_ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7 if len(names) > 24 else 8)
    bar_ax.set_ylim(0, 1)
    bar_ax.set_ylabel("keep probability 1 - p")
    bar_ax.set_title(f"Keep probability per gate group {when} (colour: stage; dashed: mode cut)")
    hist_ax.hist(keep, bins=np.linspace(0, 1, 21), color="C0", edgecolor="white")
    hist_ax.set_xlabel("keep probability 1 - p")
    hist_ax.set_ylabel("gate groups")
    hist_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist_ax.set_title("Histogram (bimodal in the paper)")
    fractions = drop_fractions(gates)
    x = np.arange(2)
    for shift, (how, color) in zip((-0.2, 0.2), (("expected", "C0"), ("mode", "C1")), strict=True):
        values = [100 * fractions[f"channels_{how}"], 100 * fractions[f"branches_{how}"]]
        bars = drop_ax.bar(x + shift, values, 0.38, color=color, label=f"{how}")
        drop_ax.bar_label(bars, fmt="%.1f%%", fontsize=8)
    drop_ax.set_xticks(x, ["channels\n(gates off)", f"{gates.get('units', 'branches')}\n(removed)"])
    drop_ax.set_ylabel("dropped (%)")
    drop_ax.set_ylim(0, 110)
    drop_ax.legend(fontsize=9)
    drop_ax.set_title("Dropped: expected vs mode")
    return fig


def entropy_figure(metrics: list[Row]) -> Figure:
    """Figure 3: entropy of q per edge (nb201) or gate group (resnet) over epochs."""
    gates = metrics[-1]["gates"]
    epoch, entropy, names = series(metrics, "epoch"), entropy_history(metrics), unit_names(gates)
    fig = new_figure(10, 4.8)
    ax = fig.subplots()
    if is_cell_space(gates):
        maximum = math.log(len(gates["edges"][0]["probs"]))
        for u, name in enumerate(names):
            ax.plot(epoch, entropy[:, u], "o-", ms=4, label=f"edge {name.replace('<-', ' <- ')}")
        ax.set_title("Entropy of q(op | edge) per edge")
    else:
        maximum = math.log(2)
        for u, name in enumerate(names):
            ax.plot(epoch, entropy[:, u], "-", lw=0.8, alpha=0.5, color=stage_color(name))
        for stage in sorted({n.split(".")[0] for n in names}):
            mean = entropy[:, [n.startswith(stage + ".") for n in names]].mean(1)
            color = stage_color(stage)
            ax.plot(epoch, mean, "o-", lw=2.5, color=color, label=f"stage {stage[1:]} (mean)")
        ax.set_title("Entropy of the keep gate of each group (thin lines) and per-stage means")
    ax.axhline(maximum, color="grey", ls="--", lw=1, label=f"maximum ln {round(math.exp(maximum))}")
    decided = when_q_decided(metrics)
    if decided["warmup_end"] is not None:
        ax.axvspan(0.5, decided["warmup_end"] + 0.5, color="grey", alpha=0.12, lw=0)
        ax.plot([], [], "s", color="grey", alpha=0.3, ms=10, label="warm-up: q frozen")
    if decided["mode_fixed_from"] is not None and len(metrics) > 1:
        fixed = decided["mode_fixed_from"]
        ax.axvline(fixed, color="black", ls=":", lw=1.2)
        ax.plot([], [], ":", color="black", label=f"mode fixed from epoch {fixed}")
    ax.set_ylabel("entropy (nats)")
    ax.set_ylim(0, 1.1 * maximum)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=9)
    _epoch_axis(ax)
    return fig
