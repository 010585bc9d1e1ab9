"""densenet121: DenseNet-121 (ImageNet) with gated dense layers and growth."""

from __future__ import annotations

from bayesnas.spaces.base import Space, SpaceOption
from bayesnas.spaces.densenet121.network import BLOCKS, DenseNetSupNet, densenet121
from bayesnas.spaces.densenet121.subnet import DenseNetSubNet
from bayesnas.spaces.keep_gates import hex_defect

SPACE = Space(
    name="densenet121",
    factory=densenet121,
    network=DenseNetSupNet,
    options=(
        SpaceOption(
            "growth",
            "densenet121: growth rate k, the channels each dense layer adds.",
            maximum=1024,
        ),
        SpaceOption(
            "dense_layers",
            "densenet121: at most this many layers per dense block (24: all of 6/12/24/16).",
            maximum=max(BLOCKS),
        ),
    ),
    subnet=lambda: DenseNetSubNet,
    figure=None,
    sample_defect=hex_defect,
)
