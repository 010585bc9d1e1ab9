"""Adding a space is one module: a toy space defined here runs search, sample, export and plot.

Nothing in the package names this space; config validation, the program, selection, export and
the report all find it through the registry.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from fakedata import write_cifar
from torch import nn

import bayesnas
from bayesnas.config import SearchConfig
from bayesnas.errors import UserError
from bayesnas.gates import GateLayout
from bayesnas.report import plot_run, summary_text
from bayesnas.search import run_search
from bayesnas.selection.sample import SampleConfig, sample
from bayesnas.spaces import (
    Space,
    SpaceOption,
    SuperNet,
    create_space,
    list_spaces,
    register_space,
    unregister_space,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class ToyNet(SuperNet):
    """Toy: a stem conv, one residual conv whose input channels are gated in two groups."""

    space_name = "toy"

    def __init__(self, channels: int = 4, num_classes: int = 10, in_channels: int = 3):
        super().__init__(channels=channels, num_classes=num_classes, in_channels=in_channels)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.head = nn.Linear(channels, num_classes)
        group_of = torch.arange(channels) * 2 // channels  # first half: group 0, second: 1
        self.layout = GateLayout("bernoulli", (channels,), group_of)

    def _run(self, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(images))
        h = h + self.conv(h * mask.to(h.dtype))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))

    def forward(self, images: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        return self._run(images, gates[:, :, None, None])

    def forward_architecture(self, images: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        return self._run(images, arch.to(images.device)[None, :, None, None])

    def gated_parameters(self) -> list[nn.Parameter]:
        return [self.conv.weight]

    def gated_sq_norms(self) -> torch.Tensor:
        return self.conv.weight.square().sum((0, 2, 3))

    def init_gate_logits(self, init_drop: float) -> torch.Tensor:
        return torch.full((2,), math.log((1 - init_drop) / init_drop))

    def canonical(self, arch: torch.Tensor) -> torch.Tensor:
        return arch.clone()

    def mode(self, gate_logits: torch.Tensor) -> torch.Tensor:
        return (self.layout.expand_logits(gate_logits) > 0).float()

    def describe(self, arch: torch.Tensor) -> str:
        return "toy:" + self.encode(arch)

    def count_parameters(self, arch: torch.Tensor) -> int:
        kept = int(arch.sum())
        conv = self.conv.weight.numel()
        total = sum(p.numel() for p in self.parameters())
        return total - conv + conv * kept // self.config["channels"]

    def encode(self, arch: torch.Tensor) -> str:
        return "".join("1" if g else "0" for g in arch.detach().cpu().tolist())

    def decode(self, text: str) -> torch.Tensor:
        return torch.tensor([float(c == "1") for c in text])

    def gate_statistics(self, gate_logits: torch.Tensor) -> dict[str, Any]:
        keep = torch.sigmoid(gate_logits.detach().float().cpu())
        entropy = F.binary_cross_entropy(keep, keep, reduction="none")
        half = self.config["channels"] // 2
        sizes = [half, self.config["channels"] - half]
        groups = [
            {"group": f"s1.g{i + 1}", "keep": float(k), "entropy": float(h), "channels": s}
            for i, (k, h, s) in enumerate(zip(keep, entropy, sizes, strict=True))
        ]
        dropped = sum((1 - k) * s for k, s in zip(keep, sizes, strict=True)) / sum(sizes)
        return {
            "groups": groups,
            "expected_channels_dropped": float(dropped),
            "mode": self.describe(self.mode(gate_logits)),
        }


class ToySubNet(nn.Module):
    """The toy sub-network: the gated conv cut to its kept input channels."""

    def __init__(self, channels: int, num_classes: int, in_channels: int, kept: list[int]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        self.register_buffer("index", torch.tensor(kept, dtype=torch.long), persistent=False)
        self.conv = nn.Conv2d(len(kept), channels, 3, padding=1, bias=False) if kept else None
        self.head = nn.Linear(channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(images))
        if self.conv is not None:
            h = h + self.conv(h.index_select(1, self.index))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        return {"kept": arch.nonzero().flatten().tolist()}

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        state = {k: v for k, v in net.state_dict().items() if not k.startswith("conv.")}
        if self.conv is not None:
            state["conv.weight"] = net.conv.weight[:, self.index.cpu()]
        return state


def toy(channels: int = 4, num_classes: int = 10, in_channels: int = 3) -> ToyNet:
    return ToyNet(channels, num_classes, in_channels)


TOY = Space(
    name="toy",
    factory=toy,
    network=ToyNet,
    options=(SpaceOption("channels", "toy: channels of the stem and the gated conv.", 2),),
    subnet=lambda: ToySubNet,
)


@pytest.fixture
def toy_space():
    register_space(TOY)
    yield TOY
    unregister_space("toy")


def test_the_registry_knows_the_toy_only_while_registered(toy_space):
    assert "toy" in list_spaces()
    assert isinstance(create_space("toy", channels=6), ToyNet)
    with pytest.raises(UserError, match="--channels must be at least 2"):
        SearchConfig(space="toy", space_options={"channels": 1}).validated()
    with pytest.raises(UserError, match="does not apply to space 'toy'"):
        SearchConfig(space="toy", space_options={"cells": 2}).validated()
    unregister_space("toy")
    assert "toy" not in list_spaces()
    register_space(TOY)  # the fixture removes it again


def test_toy_space_searches_samples_exports_and_plots(toy_space, tmp_path: Path, monkeypatch):
    data = tmp_path / "data"
    write_cifar(data, "cifar10", train=96, test=8)
    monkeypatch.setenv("BAYESNAS_DATA", str(data))
    config = SearchConfig(
        dataset="cifar10",
        space="toy",
        space_options={"channels": 4},
        epochs=2,
        batch_size=16,
        gate_lr=1.0,
        device="cpu",
    ).validated()
    run = tmp_path / "run"
    run_search(config, run, progress=False)
    assert (run / "posterior.pt").is_file()

    sample(SampleConfig(run=run, n=8, top_k=2, batch_size=32, device="cpu", progress=False))
    export = run / "export" / "rank-1"
    model = bayesnas.load_exported(export)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    assert model(images).shape == (3, 10)

    index, _ = plot_run(run, None, "png")
    assert index.is_file() and (index.parent / "06-architecture.png").is_file()
    assert "toy" in summary_text(run)
