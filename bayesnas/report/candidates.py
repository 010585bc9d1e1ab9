"""Figures 4-5: the sampled candidates' validation accuracy, best-of-k, and accuracy vs cost."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bayesnas.report.series import Row, best_of_k, top_k
from bayesnas.report.style import new_figure
from bayesnas.spaces.costs import pareto_front

SAMPLER_COLORS = {"posterior": "C0", "uniform": "C1", "fixed-dropout": "C2"}
SAMPLER_LINES = {"posterior": "-", "uniform": "--", "fixed-dropout": ":"}  # overlaps stay visible
SAMPLER_MARKERS = {"posterior": "o", "uniform": "s", "fixed-dropout": "^"}


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
        _pareto_line(ax, [r for rows in calls.values() for r in rows], key)
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


def _pareto_line(ax, rows: list[Row], key: str) -> None:
    """The Pareto front of validation accuracy against ``key`` over every candidate shown."""
    front = pareto_front([r["val_acc"] for r in rows], [r[key] for r in rows])
    points = sorted((r[key], 100 * r["val_acc"]) for r, on in zip(rows, front, strict=True) if on)
    xs, ys = zip(*points, strict=True)
    ax.step(xs, ys, where="post", color="0.3", lw=1, ls="--", zorder=1, label="Pareto front")
