"""SupNet-M, the PGNAS CIFAR prior network: a shake-shake-style ResNet with gated channels.

3 stages x 4 blocks; each block adds two ReLU-Conv3x3-BN-ReLU-Conv3x3-BN branches (averaged, the
shake-shake evaluation rule) to its shortcut. Every branch conv has one keep gate per input
channel and one drop probability per conv (a (layer, branch) group). Base width 96 gives the
paper's 26.2 M parameters.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bayesnas.errors import UserError
from bayesnas.gates import GateLayout
from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.costs import conv_slice_costs
from bayesnas.spaces.layers import batch_norm_subset


class Branch(nn.Module):
    """ReLU-Conv3x3-BN-ReLU-Conv3x3-BN, with masks on the inputs of both convs."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        h = torch.relu(x) * masks[0].to(x.dtype)  # bf16 activations stay bf16 under autocast
        h = self.bn1(self.conv1(h))
        return self.bn2(self.conv2(torch.relu(h) * masks[1].to(h.dtype)))

    def forward_kept(self, x: torch.Tensor, kept_in: torch.Tensor, kept_mid: torch.Tensor):
        """The branch restricted to kept input and middle channels (the rest is never computed)."""
        w1 = self.conv1.weight[kept_mid][:, kept_in]
        h = F.conv2d(torch.relu(x[:, kept_in]), w1, None, self.conv1.stride, 1)
        h = torch.relu(batch_norm_subset(self.bn1, h, kept_mid))
        return self.bn2(F.conv2d(h, self.conv2.weight[:, kept_mid], None, 1, 1))


class ShakeShortcut(nn.Module):
    """Shake-shake's projection shortcut: two shifted strided 1x1 convs, concatenated, BN."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x)
        shifted = F.pad(h[:, :, 1:, 1:], (0, 1, 0, 1))
        a = self.conv_a(h[:, :, :: self.stride, :: self.stride])
        b = self.conv_b(shifted[:, :, :: self.stride, :: self.stride])
        return self.bn(torch.cat([a, b], 1))


class Block(nn.Module):
    """Shortcut plus the mean of two gated branches."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.branches = cast(
            list[Branch], nn.ModuleList(Branch(c_in, c_out, stride) for _ in range(2))
        )
        same = c_in == c_out and stride == 1
        self.shortcut = nn.Identity() if same else ShakeShortcut(c_in, c_out, stride)


class ResNetSupNet(SuperNet):
    """SupNet-M: ``width`` channels in stage 1, doubled in each later stage."""

    space_name = "resnet"

    def __init__(
        self,
        width: int = 96,
        blocks: int = 4,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_channels: int = 16,
    ):
        super().__init__(
            width=width,
            blocks=blocks,
            num_classes=num_classes,
            in_channels=in_channels,
            stem_channels=stem_channels,
        )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        self.blocks = cast(list[Block], nn.ModuleList())
        c_in = stem_channels
        for stage in range(3):
            c_out = width * 2**stage
            for index in range(blocks):
                stride = 2 if stage and not index else 1
                self.blocks.append(Block(c_in, c_out, stride))
                c_in = c_out
        self.head = nn.Linear(c_in, num_classes)
        self.convs = [c for b in self.blocks for br in b.branches for c in (br.conv1, br.conv2)]
        sizes = [c.in_channels for c in self.convs]
        self.offsets = [0, *torch.tensor(sizes).cumsum(0).tolist()]
        group_of = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
        self.layout = GateLayout("bernoulli", (self.offsets[-1],), group_of)

    def _run(self, images: torch.Tensor, branch_fn) -> torch.Tensor:
        x = self.stem(images)
        for b, block in enumerate(self.blocks):
            out = block.shortcut(x)
            for r, branch in enumerate(block.branches):
                y = branch_fn(branch, x, 4 * b + 2 * r)
                if y is not None:
                    out = out + 0.5 * y
            x = out
        return self.head(F.adaptive_avg_pool2d(torch.relu(x), 1).flatten(1))

    def _slice(self, gates: torch.Tensor, conv: int) -> torch.Tensor:
        return gates[..., self.offsets[conv] : self.offsets[conv + 1]]

    def forward(self, images: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        gates = gates.to(images.dtype)

        def branch_fn(branch: Branch, x: torch.Tensor, conv: int) -> torch.Tensor:
            m1, m2 = (self._slice(gates, conv + i)[:, :, None, None] for i in (0, 1))
            return branch(x, (m1, m2))

        return self._run(images, branch_fn)

    def forward_architecture(self, images: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        kept = [
            self._slice(arch, i).nonzero().flatten().to(images.device)
            for i in range(len(self.convs))
        ]

        def branch_fn(branch: Branch, x: torch.Tensor, conv: int) -> torch.Tensor | None:
            if kept[conv].numel() == 0 or kept[conv + 1].numel() == 0:
                return None
            return branch.forward_kept(x, kept[conv], kept[conv + 1])

        return self._run(images, branch_fn)

    def gated_parameters(self) -> list[nn.Parameter]:
        return [cast(nn.Parameter, c.weight) for c in self.convs]

    def gated_sq_norms(self) -> torch.Tensor:
        return torch.cat([c.weight.square().sum((0, 2, 3)) for c in self.convs])

    def init_gate_logits(self, init_drop: float) -> torch.Tensor:
        return torch.full((len(self.convs),), math.log((1 - init_drop) / init_drop))

    def canonical(self, arch: torch.Tensor) -> torch.Tensor:
        arch = arch.clone()
        for conv in range(0, len(self.convs), 2):
            pair = slice(self.offsets[conv], self.offsets[conv + 2])
            if not (self._slice(arch, conv).any() and self._slice(arch, conv + 1).any()):
                arch[..., pair] = 0
        return arch

    def mode(self, gate_logits: torch.Tensor) -> torch.Tensor:
        return (self.layout.expand_logits(gate_logits) > 0).float()

    def describe(self, arch: torch.Tensor) -> str:
        arch = self.canonical(arch)
        stages = []
        per_stage = 4 * self.config["blocks"]
        for stage in range(3):
            widths = []
            for b in range(self.config["blocks"]):
                first = stage * per_stage + 4 * b
                mids = [int(self._slice(arch, first + 2 * r + 1).sum()) for r in (0, 1)]
                widths.append("+".join(str(m) if m else "-" for m in mids))
            stages.append(f"s{stage + 1}: " + " ".join(widths))
        return " | ".join(stages)

    def gate_costs(self, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
        """Each channel gate charges the weight slice it switches (``conv_slice_costs``)."""
        return conv_slice_costs(self, self.convs, metric, image_size)

    def figure_widths(self, arch: torch.Tensor) -> list[dict[str, Any]]:
        """Per block and branch of ``arch``: kept input and middle channels, the full widths."""
        net, arch = self, self.canonical(arch)
        names = net.group_names()
        rows = []
        for conv in range(0, len(net.convs), 2):
            kept = [int(arch[net.offsets[c] : net.offsets[c + 1]].sum()) for c in (conv, conv + 1)]
            rows.append(
                {
                    "block": names[conv].rsplit(".", 2)[0],
                    "branch": int(names[conv].split(".br")[1][0]),
                    "kept_in": kept[0],
                    "full_in": net.convs[conv].in_channels,
                    "kept_mid": kept[1],
                    "full_mid": net.convs[conv + 1].in_channels,
                }
            )
        return rows

    def count_parameters(self, arch: torch.Tensor) -> int:
        arch = self.canonical(arch)
        branches = {id(p) for c in self.convs for p in c.parameters()}
        branches |= {id(p) for b in self.blocks for br in b.branches for p in br.parameters()}
        total = sum(p.numel() for p in self.parameters() if id(p) not in branches)
        for conv in range(0, len(self.convs), 2):
            k_in = int(self._slice(arch, conv).sum())
            k_mid = int(self._slice(arch, conv + 1).sum())
            if k_in and k_mid:
                c_out = self.convs[conv + 1].out_channels
                total += 9 * (k_mid * k_in + c_out * k_mid) + 2 * k_mid + 2 * c_out
        return total

    def encode(self, arch: torch.Tensor) -> str:
        bits = np.packbits(arch.detach().cpu().numpy().astype(bool))
        return bits.tobytes().hex()

    def decode(self, text: str) -> torch.Tensor:
        bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))
        return torch.from_numpy(bits[: self.layout.shape[0]].astype(np.float32))

    def group_names(self) -> list[str]:
        per_stage = self.config["blocks"]
        return [
            f"s{b // per_stage + 1}.b{b % per_stage + 1}.br{r + 1}.conv{c + 1}"
            for b in range(len(self.blocks))
            for r in (0, 1)
            for c in (0, 1)
        ]

    def gate_statistics(self, gate_logits: torch.Tensor) -> dict[str, Any]:
        keep = torch.sigmoid(gate_logits.detach().float().cpu())
        entropy = F.binary_cross_entropy(keep, keep, reduction="none")
        sizes = [c.in_channels for c in self.convs]
        groups = [
            {"group": n, "keep": float(k), "entropy": float(h), "channels": s}
            for n, k, h, s in zip(self.group_names(), keep, entropy, sizes, strict=True)
        ]
        total = sum(sizes)
        return {
            "groups": groups,
            "expected_channels_dropped": float(
                sum((1 - k) * s for k, s in zip(keep, sizes, strict=True)) / total
            ),
            "mode": self.describe(self.mode(gate_logits)),
        }


def resnet(
    width: int = 96,
    blocks: int = 4,
    num_classes: int = 10,
    in_channels: int = 3,
    stem_channels: int = 16,
) -> ResNetSupNet:
    """SupNet-M (width 96: 26.2 M parameters; small widths for CPU)."""
    if width < 2:  # the shake-shake shortcut splits a stage's channels in two halves
        raise UserError(f"--width must be at least 2, got {width}")
    return ResNetSupNet(width, blocks, num_classes, in_channels, stem_channels)
