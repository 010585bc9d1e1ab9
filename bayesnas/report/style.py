"""The figures' shared look: the figure factory, op labels and stage colours."""

from __future__ import annotations

from matplotlib.figure import Figure

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
