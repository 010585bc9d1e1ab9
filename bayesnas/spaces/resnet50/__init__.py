"""resnet50: ResNet-50 (ImageNet) with gated bottleneck widths and bottlenecks."""

from __future__ import annotations

from bayesnas.spaces.base import Space, SpaceOption
from bayesnas.spaces.keep_gates import hex_defect
from bayesnas.spaces.resnet50.network import STAGES, ResNet50SupNet, resnet50
from bayesnas.spaces.resnet50.subnet import ResNet50SubNet

SPACE = Space(
    name="resnet50",
    factory=resnet50,
    network=ResNet50SupNet,
    options=(
        SpaceOption(
            "base_width",
            "resnet50: bottleneck width of stage 1, doubled per stage; at least 3.",
            minimum=3,
            maximum=1024,
        ),
        SpaceOption(
            "bottlenecks",
            "resnet50: at most this many bottlenecks per stage (6: all of 3/4/6/3).",
            maximum=max(STAGES),
        ),
    ),
    subnet=lambda: ResNet50SubNet,
    figure=None,
    sample_defect=hex_defect,
)
