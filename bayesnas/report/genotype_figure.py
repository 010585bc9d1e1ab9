"""Figure 6 ("genotype"): the normal and the reduction cell of a DARTS genotype, drawn as DAGs.

The genotype comes from the space's ``drawing`` hook: anything with ``cell(kind)`` (``(op,
input)`` pairs, two per intermediate node) and ``concat(kind)`` for kinds normal and reduce."""

from __future__ import annotations

from typing import Protocol

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch

from bayesnas.report.style import new_figure

OP_COLORS = {
    "max_pool_3x3": "C4",
    "avg_pool_3x3": "C6",
    "skip_connect": "C2",
    "sep_conv_3x3": "C3",
    "sep_conv_5x5": "C1",
    "dil_conv_3x3": "C0",
    "dil_conv_5x5": "C9",
}
TITLES = {"normal": "normal cell", "reduce": "reduction cell (stride 2 on edges from the inputs)"}


class Genotype(Protocol):
    """What the figure reads of a genotype."""

    def cell(self, kind: str) -> tuple[tuple[str, int], ...]: ...

    def concat(self, kind: str) -> tuple[int, ...]: ...


def _positions(nodes: int) -> dict[int, tuple[float, float]]:
    """Node -> (x, y): the two cell inputs left, intermediate nodes zigzag, the output right."""
    places = {0: (0.0, 2.4), 1: (0.0, -2.4)}
    for node in range(nodes):
        places[node + 2] = (3.0 + 2.6 * node, 1.5 if node % 2 == 0 else -1.5)
    places[nodes + 2] = (3.0 + 2.6 * nodes, 0.0)
    return places


def _on_arc(start, end, rad: float, t: float) -> tuple[float, float]:
    """The point at ``t`` of matplotlib's arc3 curve from ``start`` to ``end``."""
    (x1, y1), (x2, y2) = start, end
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    u = 1 - t
    return u * u * x1 + 2 * t * u * cx + t * t * x2, u * u * y1 + 2 * t * u * cy + t * t * y2


def _draw_cell(
    ax: Axes, genotype: Genotype, kind: str, probs: dict[str, dict[str, float]] | None
) -> None:
    nodes = len(genotype.cell(kind)) // 2
    places = _positions(nodes)
    names = {0: "c_{k-2}", 1: "c_{k-1}", nodes + 2: "c_{k}\n(concat)"}
    circles = {}
    for node, (x, y) in places.items():
        circles[node] = Circle((x, y), 0.42, fc="white", ec="black", lw=1.4, zorder=3)
        ax.add_patch(circles[node])
        label = names.get(node, str(node - 2))
        ax.text(
            x, y, label, ha="center", va="center", fontsize=8 if node in names else 11, zorder=4
        )
    for index, (op, src) in enumerate(genotype.cell(kind)):
        to = index // 2 + 2
        rad = 0.18 if index % 2 == 0 else -0.18
        (x1, y1), (x2, y2) = places[src], places[to]
        ax.add_patch(
            FancyArrowPatch(
                (x1, y1),
                (x2, y2),
                connectionstyle=f"arc3,rad={rad}",
                arrowstyle="-|>",
                mutation_scale=14,
                patchA=circles[src],
                patchB=circles[to],
                lw=2.0,
                color=OP_COLORS[op],
                zorder=2,
            )
        )
        text = op
        if probs is not None:
            text += f"\nq = {probs[f'{kind} {to}<-{src}'][op]:.2f}"
        label_x, label_y = _on_arc(places[src], places[to], rad, 0.45 if index % 2 else 0.62)
        ax.text(
            label_x,
            label_y,
            text,
            ha="center",
            va="center",
            fontsize=7,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": OP_COLORS[op], "alpha": 0.9},
        )
    for node in genotype.concat(kind):
        ax.add_patch(
            FancyArrowPatch(
                places[node],
                places[nodes + 2],
                arrowstyle="-|>",
                mutation_scale=10,
                patchA=circles[node],
                patchB=circles[nodes + 2],
                lw=1,
                ls="--",
                color="0.6",
            )
        )
    ax.set_xlim(-0.8, places[nodes + 2][0] + 0.8)
    ax.set_ylim(-3.0, 3.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(TITLES[kind], fontsize=10)


def genotype_figure(
    genotype: Genotype, title: str, probs: dict[str, dict[str, float]] | None = None
) -> Figure:
    """Both cells, each op on its edge (q: posterior probability of that op on that edge);
    dashed grey: the nodes concatenated into the cell's output."""
    fig = new_figure(12, 8.6)
    for ax, kind in zip(fig.subplots(2, 1), TITLES, strict=True):
        _draw_cell(ax, genotype, kind, probs)
    fig.suptitle(title)
    return fig
