"""Figures 1-5 of a run's posterior diagnostics (their arrays come from ``series``).

Every ``*_figure`` function builds a ``matplotlib.figure.Figure`` without pyplot (no global
state, no display); ``savefig`` renders it with Agg. The arrays are
``bayesnas.report.series``'s, re-exported here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from bayesnas.report.decision import when_q_decided
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
    series,
    top_k,
    unit_names,
)

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
    "samples_figure",
    "series",
    "stage_color",
    "top_k",
    "training_figure",
    "unit_names",
]


OP_LABELS = {
    "none": "none",
    "skip_connect": "skip",
    "nor_conv_1x1": "conv 1x1",
    "nor_conv_3x3": "conv 3x3",
    "avg_pool_3x3": "avg pool 3x3",
}

SAMPLER_COLORS = {"posterior": "C0", "uniform": "C1", "fixed-dropout": "C2"}

SAMPLER_LINES = {"posterior": "-", "uniform": "--", "fixed-dropout": ":"}  # overlaps stay visible

SAMPLER_MARKERS = {"posterior": "o", "uniform": "s", "fixed-dropout": "^"}

STAGE_COLORS = ("C0", "C1", "C2", "C3")


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure, so labels never overlap."""
    return Figure(figsize=(width, height), layout="constrained", dpi=110)


def stage_color(name: str) -> str:
    """One colour per stage of a resnet group or block name such as ``s2.b1.br1.conv1``."""
    return STAGE_COLORS[(int(name.split(".")[0][1:]) - 1) % len(STAGE_COLORS)]


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


def _heatmap(ax: Axes, edges: list[str], ops: list[str], probs: np.ndarray) -> Any:
    image = ax.imshow(probs, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(probs):
        color = "black" if value > 0.6 else "white"
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", color=color, fontsize=9)
    for i, j in enumerate(probs.argmax(1)):
        if np.sum(probs[i] == probs[i, j]) > 1:
            continue  # tied: this edge has no mode yet
        ax.add_patch(Rectangle((j - 0.45, i - 0.42), 0.9, 0.84, fill=False, ec="orange", lw=2))
    ax.set_xticks(range(len(ops)), [OP_LABELS.get(o, o) for o in ops], rotation=30, ha="right")
    ax.set_yticks(range(len(edges)), [f"edge {e.replace('<-', ' <- ')}" for e in edges])
    ax.set_xlabel("operation")
    return image


def cell_posterior_figure(metrics: list[Row], gates: dict[str, Any], when: str) -> Figure:
    """Figure 2 (nb201): q(op | edge) at the end as a heatmap, and its evolution per edge."""
    edges, ops, probs = op_matrix(gates)
    fig = new_figure(15, 5.2)
    left, right = fig.subfigures(1, 2, width_ratios=[1, 1.5])
    ax = left.subplots()
    left.colorbar(_heatmap(ax, edges, ops, probs), ax=ax, label="q(op | edge)")
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
    right.suptitle("Evolution over epochs", fontsize=11)
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
    drop_ax.set_xticks(x, ["channels\n(gates off)", "branches\n(removed)"])
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


def _sampler_label(sampler: str, rows: list[Row]) -> str:
    best = max(r["val_acc"] for r in rows)
    return f"{sampler} ({len(rows)} distinct of {rows[0]['n']}, best {best:.1%})"


def samples_figure(calls: dict[str, list[Row]]) -> Figure:
    """Figure 4: validation accuracy of the sampled candidates, and best-of-k per sampler."""
    fig = new_figure(13, 4.6)
    hist_ax, curve_ax = fig.subplots(1, 2)
    accs = np.concatenate([[r["val_acc"] for r in rows] for rows in calls.values()])
    bins = np.linspace(100 * accs.min(), 100 * accs.max() + 1e-9, 16)
    for sampler, rows in calls.items():
        color = SAMPLER_COLORS.get(sampler)
        values = [100 * r["val_acc"] for r in rows]
        draws = [r["draws"] for r in rows]  # a network drawn 95 times counts 95 times
        label = _sampler_label(sampler, rows)
        hist_ax.hist(
            values, bins=bins, weights=draws, histtype="stepfilled", alpha=0.35, color=color
        )
        style = {"color": color, "ls": SAMPLER_LINES.get(sampler, "-"), "lw": 2}
        hist_ax.hist(values, bins=bins, weights=draws, histtype="step", label=label, **style)
        curve = best_of_k(rows)
        k = np.arange(1, len(curve) + 1)
        curve_ax.step(k, 100 * curve, where="post", label=sampler, **style)
    hist_ax.set_xlabel("validation accuracy (%)")
    hist_ax.set_ylabel("draws (each candidate weighted by its draws)")
    hist_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    hist_ax.set_title("Sampled candidates, weighted by draws")
    hist_ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=9)
    curve_ax.set_xlabel("k (architectures drawn)")
    curve_ax.set_ylabel("best validation accuracy of the first k (%)")
    curve_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    curve_ax.set_title("Best of k draws (the paper's Table 6)")
    curve_ax.legend(fontsize=9, loc="lower right")
    curve_ax.grid(alpha=0.3)
    return fig


def cost_figure(calls: dict[str, list[Row]]) -> Figure:
    """Figure 5: validation accuracy against parameters and FLOPs; top-k filled, top-1 star."""
    fig = new_figure(13, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    best = max((r for rows in calls.values() for r in rows), key=lambda r: r["val_acc"])
    for ax, key, label in zip(
        axes, ("params_m", "mflops"), ("parameters (M)", "FLOPs per image (M)"), strict=True
    ):
        for sampler, rows in calls.items():
            color = SAMPLER_COLORS.get(sampler)
            k = top_k(rows)
            top = [r for r in rows if r["rank"] <= k]
            rest = [r for r in rows if r["rank"] > k]
            marker = SAMPLER_MARKERS.get(sampler, "D")
            ax.scatter(
                [r[key] for r in rest],
                [100 * r["val_acc"] for r in rest],
                s=30,
                marker=marker,
                facecolors="none",
                edgecolors=color,
                label=sampler,
            )
            ax.scatter(
                [r[key] for r in top],
                [100 * r["val_acc"] for r in top],
                s=45,
                marker=marker,
                color=color,
                edgecolors="black",
                linewidths=1.2,
                label=f"{sampler}: top {k} (exported)" if k else "_nolegend_",
            )
        ax.scatter(
            best[key],
            100 * best["val_acc"],
            s=260,
            marker="*",
            color="gold",
            ec="black",
            zorder=3,
            label=f"top-1 ({best['sampler']})",
        )
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        ax.set_title(f"Validation accuracy vs {label.split(' (')[0]}")
    axes[0].set_ylabel("validation accuracy (%)")
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig
