"""The figures' shared look: the figure factory, op labels, stage colours and the op heatmap."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

OP_LABELS = {
    "none": "none",
    "skip_connect": "skip",
    "nor_conv_1x1": "conv 1x1",
    "nor_conv_3x3": "conv 3x3",
    "avg_pool_3x3": "avg pool 3x3",
}
STAGE_COLORS = ("C0", "C1", "C2", "C3")


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure, so labels never overlap."""
    return Figure(figsize=(width, height), layout="constrained", dpi=110)


def stage_color(name: str) -> str:
    """One colour per stage of a resnet group or block name such as ``s2.b1.br1.conv1``."""
    return STAGE_COLORS[(int(name.split(".")[0][1:]) - 1) % len(STAGE_COLORS)]


def heatmap(
    ax: Axes, edges: list[str], ops: list[str], probs: np.ndarray, mode: list[str] | None = None
) -> Any:
    """q(op | edge) (or p) on the fixed 0..1 scale with the mode framed: the row's top op, or
    ``mode``'s op per row where the space's mode is not row by row (darts: the most probable
    pair of inputs per node)."""
    image = ax.imshow(probs, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (i, j), value in np.ndenumerate(probs):
        color = "black" if value > 0.6 else "white"
        ax.text(j, i, f"{value:.3f}", ha="center", va="center", color=color, fontsize=9)
    tops = probs.argmax(1) if mode is None else [ops.index(op) for op in mode]
    for i, j in enumerate(tops):
        if mode is None and np.sum(probs[i] == probs[i, j]) > 1:
            continue  # tied: this edge has no mode yet
        ax.add_patch(Rectangle((j - 0.45, i - 0.42), 0.9, 0.84, fill=False, ec="orange", lw=2))
    ax.set_xticks(range(len(ops)), [OP_LABELS.get(o, o) for o in ops], rotation=30, ha="right")
    ax.set_yticks(range(len(edges)), [f"edge {e.replace('<-', ' <- ')}" for e in edges])
    ax.set_xlabel("operation")
    return image
