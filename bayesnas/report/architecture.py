"""Figure 6: one architecture drawn, as its space's record asks (``Space.figure``): a cell as a
DAG, a genotype's two cells, the widths kept per block and branch, or the text."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch
from matplotlib.ticker import MaxNLocator

from bayesnas.report.run import Row, RunData
from bayesnas.report.style import OP_LABELS, new_figure, stage_color

OP_COLORS = {
    "none": "0.6",
    "skip_connect": "C2",
    "nor_conv_1x1": "C0",
    "nor_conv_3x3": "C3",
    "avg_pool_3x3": "C4",
}
SPACING = 3.0  # data units between consecutive nodes
# arc3 curvature by the nodes an edge spans (negative: above); -2 is the arc 1 -> 3, drawn below
BEND = {1: 0.0, 2: -0.35, 3: -0.42, -2: 0.55}
NODE_NAMES = ("input\n(node 0)", "node 1", "node 2", "output\n(node 3)")


def _label_point(src: int, to: int, rad: float) -> tuple[float, float]:
    """Midpoint of matplotlib's arc3 curve between two nodes (equal aspect), where a label sits."""
    x1, x2 = SPACING * src, SPACING * to
    return (x1 + x2) / 2, -rad * (x2 - x1) / 2  # arc3's control point: rad * (dy, -dx) away


def cell_figure(
    edges: list[tuple[int, int, str]], title: str, probs: dict[str, dict[str, float]] | None = None
) -> Figure:
    """Figure 6 ("cell"): a 4-node cell as a DAG, ``edges`` as (from node, to node, op name),
    op names on the edges; 'none' dashed grey."""
    fig = new_figure(11, 4.6)
    ax = fig.subplots()
    circles = [
        Circle((SPACING * node, 0), 0.45, fc="white", ec="black", lw=1.5, zorder=3)
        for node in range(4)
    ]
    for node, circle in enumerate(circles):
        ax.add_patch(circle)
        ax.text(SPACING * node, 0, str(node), ha="center", va="center", fontsize=13, zorder=4)
        ax.text(SPACING * node, -0.6, NODE_NAMES[node], ha="center", va="top", fontsize=9)
    for src, to, op in edges:
        span = to - src
        bend = -span if (src, to) == (1, 3) else span  # keep the long arcs' labels apart
        rad = BEND[bend]
        none = op == "none"
        ax.add_patch(
            FancyArrowPatch(
                (SPACING * src, 0),
                (SPACING * to, 0),
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>",
                mutation_scale=16,
                patchA=circles[src],
                patchB=circles[to],
                lw=1.2 if none else 2.2,
                ls="--" if none else "-",
                color=OP_COLORS[op],
                zorder=2,
            )
        )
        x, y = _label_point(src, to, rad)
        text = OP_LABELS[op]
        if probs is not None:
            text += f"\nq = {probs[f'{to}<-{src}'][op]:.2f}"
        y_text = y + (0.22 if span == 1 else 0)
        ax.text(
            x,
            y_text,
            text,
            ha="center",
            va="bottom" if span == 1 else "center",
            fontsize=9,
            color="0.4" if none else "black",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": OP_COLORS[op], "alpha": 0.9},
        )
    ax.set_xlim(-1, SPACING * 3 + 1)
    ax.set_ylim(-2.2, 2.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return fig


def widths_figure(widths: list[dict[str, Any]], title: str) -> Figure:
    """Figure 6 (resnet): kept middle and input channels per block and branch (removed: x)."""
    blocks = list(dict.fromkeys(w["block"] for w in widths))
    fig = new_figure(max(10, 1.1 * len(blocks) + 3), 6.4)
    axes = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(blocks))
    for ax, key, label in zip(
        axes,
        ("mid", "in"),
        ("middle channels kept\n(conv1 out = conv2 in)", "input channels kept\n(conv1 in)"),
        strict=True,
    ):
        for branch, shift in ((1, -0.2), (2, 0.2)):
            rows = [w for w in widths if w["branch"] == branch]
            full = [w[f"full_{key}"] for w in rows]
            kept = [w[f"kept_{key}"] for w in rows]
            colors = [stage_color(w["block"]) for w in rows]
            ax.bar(x + shift, full, 0.38, fc="none", ec="0.5", ls="--", lw=1)
            bars = ax.bar(x + shift, kept, 0.38, color=colors, alpha=0.55 + 0.35 * (branch == 1))
            ax.bar_label(
                bars,
                [f"{k}/{f}" if k else "x" for k, f in zip(kept, full, strict=True)],
                fontsize=8,
            )
        ax.set_ylabel(label)
        ax.set_ylim(0, 1.18 * max(w[f"full_{key}"] for w in widths))
        ax.grid(axis="y", alpha=0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].set_xticks(x, [f"{b}\nbr1 | br2" for b in blocks])
    axes[1].set_xlabel("block (left bar: branch 1, right bar: branch 2; dashed: full width)")
    axes[0].set_title(title)
    return fig


def _describe_candidate(best: Row) -> str:
    return (
        f"{best['sampler']} sampler, val acc {best['val_acc']:.1%}, {best['params_m']:.3f} M params"
    )


def architecture_figure(run: RunData, best: Row | None) -> tuple[Figure, str] | None:
    """Figure 6 and its caption: the top-1 candidate, else the posterior mode (None: no data)."""
    from bayesnas.spaces import create_space, lookup

    gates = run.gates or {}
    if best is None and (not gates or not run.has_mode):
        return None  # no candidate, and q has no mode (yet) to draw
    source = "top-1 candidate" if best else f"posterior mode {run.when}"
    detail = f"\n({_describe_candidate(best)})" if best else ""
    space = lookup(run.config["space"])
    kind = space.figure if space is not None else None
    if kind == "cell" and space is not None and space.drawing is not None:
        arch = best["architecture"] if best else gates["mode"]
        probs = {e["edge"]: e["probs"] for e in gates["edges"]} if gates else None
        title = f"NAS-Bench-201 cell of the {source}{detail}"
        figure = cell_figure(space.drawing(arch), title, probs)
        caption = f"{source}: {arch}; q = posterior probability of the op on that edge"
        return figure, caption
    if kind == "genotype" and space is not None and space.drawing is not None:
        return _genotype(run, space.drawing, best, source, detail)
    net = create_space(run.config["space"], **run.config["space_options"])
    if best is not None:
        arch = net.decode(best["encoding"])
    elif run.posterior is not None:
        arch = net.mode(run.posterior["gate_logits"])
    else:
        arch = net.mode(torch.logit(torch.tensor([g["keep"] for g in gates["groups"]])))
    text = net.describe(arch)
    if kind == "widths":
        widths = net.figure_widths(arch)
        figure = widths_figure(widths, f"Channels kept by the {source}{detail}")
        return figure, f"{source}: channels kept per block and branch ({text})"
    return text_figure(text, f"Architecture of the {source}{detail}"), f"{source}: {text}"


def _genotype(
    run: RunData, parse: Callable[[str], Any], best: Row | None, source: str, detail: str
) -> tuple[Figure, str]:
    """Figure 6 ("genotype"): the normal and reduction cells of the top-1 or of q's mode."""
    from bayesnas.report.genotype_figure import genotype_figure

    gates = run.gates or {}
    arch = best["architecture"] if best else gates["mode"]
    probs = {e["edge"]: e["probs"] for e in gates["edges"]} if gates else None
    figure = genotype_figure(parse(arch), f"DARTS cells of the {source}{detail}", probs)
    return figure, f"{source}: {arch}; q = posterior probability of the op on that edge"


def text_figure(text: str, title: str) -> Figure:
    """The architecture in its space's notation, for a space that names no figure of its own."""
    figure = new_figure(8, 2.5)
    ax = figure.add_subplot()
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, textwrap.fill(text, 90), ha="center", va="center", family="monospace")
    return figure
