"""resnet: a shake-shake ResNet whose channel groups are gated (the paper's CIFAR space)."""

from __future__ import annotations

from typing import Any

from bayesnas.spaces.base import Space, SpaceOption
from bayesnas.spaces.resnet.network import ResNetSupNet, resnet
from bayesnas.spaces.resnet.subnet import ResNetSubNet


def _sample_defect(row: dict[str, Any]) -> str | None:
    try:
        bytes.fromhex(row["encoding"])
    except (KeyError, TypeError, ValueError):
        return f"encoding {row.get('encoding')!r} is not the hex of a gate vector"
    return None


SPACE = Space(
    name="resnet",
    factory=resnet,
    network=ResNetSupNet,
    options=(
        SpaceOption(
            "width",
            "resnet: base width, at least 2 (96: the paper's 26.2 M).",
            minimum=2,
            maximum=1024,
        ),
        SpaceOption("blocks", "resnet: blocks per stage (paper: 4).", maximum=64),
    ),
    subnet=lambda: ResNetSubNet,
    figure="widths",
    sample_defect=_sample_defect,
    presets={
        # the CPU recipe of docs/paper.md: a small SupNet whose channel-gate posterior separates
        # groups in minutes. The KL's N is the search-train size itself (Eq. 15's N), not 10x
        # it: with 10x the KL is too weak against the likelihood for q to move in 4 epochs.
        "quick": {
            "space_options": {"width": 8, "blocks": 2},
            "epochs": 4,
            "train_size": 12800,
            "kl_n": 12800,
            "init_drop": 0.3,
            "tau_final": 1.0,
            "prune_below": 0.0,
            "augmentation": {"pad": 2, "flip": True, "cutout": 0},
        },
    },
)
