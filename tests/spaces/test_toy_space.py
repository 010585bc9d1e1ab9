"""Adding a space is one module: a toy space defined here runs search, sample, export and plot.

Nothing in the package names this space; config validation, the program, selection, export and
the report all find it through the registry, and every optional hook of ``spaces/base.py`` is
implemented here, outside the package: ``gate_costs`` (the cost-aware prior), ``latency_table``
(sample's latency estimate), ``share_plan`` (torchrun), ``support_plan`` (captured steps),
``figure_widths`` with ``figure="widths"`` (the report), and a ``TrainRecipe`` (``train --arch``).
"""

from __future__ import annotations

import math
import os
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from fakedata import write_cifar
from torch import nn

import bayesnas
from bayesnas.config import SearchConfig
from bayesnas.errors import UserError
from bayesnas.gates import GateLayout
from bayesnas.report import plot_run, summary_text
from bayesnas.search import Searcher, run_search
from bayesnas.search.capture import StepCapture
from bayesnas.selection.sample import SampleConfig, sample
from bayesnas.spaces import (
    Space,
    SpaceOption,
    SuperNet,
    TrainRecipe,
    create_space,
    list_spaces,
    register_space,
    unregister_space,
)
from bayesnas.spaces.costs import conv_slice_costs
from bayesnas.train import run_train
from bayesnas.train.config import default_run_dir, presets, resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")


CALLS: Counter[str] = Counter()  # which hooks the package called, on any toy network


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
        self.reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

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

    # -- the optional hooks ------------------------------------------------------------------

    def gate_costs(self, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
        CALLS["gate_costs"] += 1
        return conv_slice_costs(self, [self.conv], metric, image_size)

    def latency_table(self, image_size: int) -> tuple[float, torch.Tensor]:
        CALLS["latency_table"] += 1
        return 0.5, torch.full(self.layout.shape, 0.25)

    def share_plan(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.reduce = reduce

    def support_plan(self, gate_logits: torch.Tensor) -> list[list[int]]:
        return [[int(k) for k in (gate_logits > -30).tolist()]]  # the groups q may still keep

    def figure_widths(self, arch: torch.Tensor) -> list[dict[str, Any]]:
        CALLS["figure_widths"] += 1
        kept, full = int(arch.sum()), self.config["channels"]
        return [
            {"block": "s1.b1", "branch": 1, "kept_in": kept, "full_in": full}
            | {"kept_mid": kept, "full_mid": full}
        ]

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


def read_toy(text: str) -> tuple[str, dict[str, Any]]:
    """``toy:0110``: the gate of each channel; the sub-network keeps the channels set."""
    bits = text.strip().removeprefix("toy:")
    if not bits or set(bits) - {"0", "1"}:
        raise ValueError(f"{text!r} is not toy: and a string of 0s and 1s")
    return "toy:" + bits, {"kept": [i for i, b in enumerate(bits) if b == "1"]}


TOY = Space(
    name="toy",
    factory=toy,
    network=ToyNet,
    options=(SpaceOption("channels", "toy: channels of the stem and the gated conv.", 2),),
    subnet=lambda: ToySubNet,
    figure="widths",
    recipe=TrainRecipe(
        notation="toy gate string",
        reads=lambda text: text.lstrip().startswith("toy:"),
        parse=read_toy,
        size={"channels": 4},
        presets={"toy-short": {"epochs": 1, "batch_size": 16, "lr": 0.05, "weight_decay": 0.0}},
    ),
)


@pytest.fixture
def toy_space():
    register_space(TOY)
    CALLS.clear()
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


def test_the_package_calls_the_toy_hooks(toy_space, tmp_path: Path, monkeypatch):
    """The cost-aware prior reads ``gate_costs``, sample's latency column ``latency_table``,
    the report's widths figure ``figure_widths``."""
    data = tmp_path / "data"
    write_cifar(data, "cifar10", train=64, test=8)
    monkeypatch.setenv("BAYESNAS_DATA", str(data))
    config = SearchConfig(
        dataset="cifar10",
        space="toy",
        space_options={"channels": 4},
        epochs=1,
        batch_size=16,
        cost="params",
        cost_weight=0.5,
        device="cpu",
    ).validated()
    run = tmp_path / "run"
    run_search(config, run, progress=False)
    assert CALLS["gate_costs"] >= 1
    _, rows = sample(
        SampleConfig(run=run, n=4, top_k=1, batch_size=32, device="cpu", progress=False)
    )
    assert CALLS["latency_table"] >= 1
    for row in rows:  # base 0.5 ms, 0.25 ms per kept channel (the toy's table)
        assert row["latency_ms_est"] == pytest.approx(0.5 + 0.25 * row["encoding"].count("1"))
    plot_run(run, None, "png")
    assert CALLS["figure_widths"] >= 1


def test_a_captured_step_fixes_the_toy_support_plan(toy_space):
    net = create_space("toy", channels=4)
    logits = torch.tensor([2.0, -40.0])  # the second group pruned: q keeps only the first
    notes: list[str] = []
    capture = StepCapture("compile", net, logits, torch.device("cpu"), notes.append)
    with capture.step() as captured:
        assert captured and net.fixed_plan == [[1, 0]]
    assert net.fixed_plan is None and notes == []


def _toy_rank(rank: int, port: int, data_root: Path, out: Path) -> None:
    """One rank of a 2-process job: the toy's ``share_plan`` gets a sum over both ranks."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    os.environ["BAYESNAS_DATA"] = str(data_root)
    torch.set_num_threads(1)
    register_space(TOY)
    config = SearchConfig(
        dataset="cifar10", space="toy", epochs=1, batch_size=16, device="cpu"
    ).validated()
    (out / f"run{rank}").mkdir()
    searcher = Searcher(config, out / f"run{rank}", progress=False)
    net = searcher.program.net
    assert isinstance(net, ToyNet) and net.reduce is not None
    torch.save(net.reduce(torch.tensor([rank + 1.0])), out / f"rank{rank}.pt")


def test_torchrun_hands_the_toy_a_sum_over_ranks(tmp_path: Path, isolated_data_env: Path):
    data = tmp_path / "data"
    write_cifar(data, "cifar10", train=64, test=8)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_toy_rank, args=(port, data, tmp_path), nprocs=2, join=True)
    for rank in (0, 1):
        assert torch.load(tmp_path / f"rank{rank}.pt").tolist() == [3.0]  # 1 + 2


def test_train_arch_reads_the_toy_notation(toy_space, tmp_path: Path):
    data = tmp_path / "data"
    write_cifar(data, "cifar10", train=64, test=16)
    assert "toy-short" in presets()
    config = resolve_config(arch=" toy:0110", dataset="cifar10", data_root=data, preset="toy-short")
    assert (config.space, config.architecture, config.epochs) == ("toy", "toy:0110", 1)
    assert config.subnet == {"space": "toy", **config.space_config, "kept": [1, 2]}
    assert default_run_dir(config).name.startswith("train-cifar10-channels4-")
    result = run_train(config, tmp_path / "train", progress=False)
    assert 0 <= result["test_accuracy"] <= 1
    model = bayesnas.load_exported(tmp_path / "train")
    assert model(torch.zeros(1, 3, 32, 32, dtype=torch.uint8)).shape == (1, 10)
    with pytest.raises(UserError, match="malformed --arch: 'toy:01x' is not toy"):
        resolve_config(arch="toy:01x", dataset="cifar10", data_root=data, preset="toy-short")
