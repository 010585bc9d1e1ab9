"""Standalone sub-networks: one architecture of a super-network as a physically smaller module.

A sub-network is described by a small JSON-able spec (``subnet_spec``), rebuilt from that spec
alone with fresh weights (``subnet_from_spec``), and filled with the super-network's weights by
``build_subnet``; in eval mode it computes ``net.forward_architecture(x, arch)``. Its structure is
fixed at construction, so ``forward(images)`` has no data-dependent control flow and exports to
ONNX and TorchScript. Dropped ops, channels and branches hold no weights and cost nothing.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from bayesnas.spaces.base import SuperNet
from bayesnas.spaces.layers import ReLUConvBN, ResidualReduction
from bayesnas.spaces.nb201 import CONV1, CONV3, EDGES, NONE, OPS, POOL, SKIP, _live_nodes
from bayesnas.spaces.resnet import Branch, ShakeShortcut


def subnet_spec(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
    """The JSON description of sub-network ``arch``: the space, its config and what is kept."""
    return {"space": net.space_name, **net.config, **_subnet_class(net.space_name).kept(net, arch)}


def subnet_from_spec(spec: dict[str, Any]) -> nn.Module:
    """A freshly initialised sub-network shaped by ``spec``; ValueError if it is malformed."""
    options = {k: v for k, v in spec.items() if k != "space"}
    try:
        return _subnet_class(spec.get("space"))(**options)
    except (KeyError, TypeError) as exc:  # a missing, unknown or mistyped entry
        raise ValueError(f"bad sub-network spec: {type(exc).__name__} {exc}") from None


def build_subnet(net: SuperNet, arch: torch.Tensor) -> nn.Module:
    """Sub-network ``arch`` holding copies of the super-network's kept weights, in eval mode."""
    subnet = subnet_from_spec(subnet_spec(net, arch))
    subnet.load_state_dict(subnet.weights_from(net))
    return subnet.to(next(net.parameters()).device).eval()


def _subnet_class(space: Any) -> type[NB201SubNet] | type[ResNetSubNet]:
    classes = {"nb201": NB201SubNet, "resnet": ResNetSubNet}
    if space not in classes:
        raise ValueError(f"space {space!r} has no standalone sub-network; known: {list(classes)}")
    return classes[space]


# --- NAS-Bench-201 ------------------------------------------------------------------------------

_OP_KEYS = {SKIP: "skip", CONV1: "conv1x1", CONV3: "conv3x3", POOL: "pool"}
_SUPER_KEY = re.compile(r"\.edges\.(conv1x1|conv3x3)_(\d)\.")  # sub-network key -> super's


class ZeroInputConv(nn.Module):
    """A conv op on an identically zero node: only its BatchNorm shift survives (no conv)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(torch.zeros_like(x))


class SubCell(nn.Module):
    """A NAS-Bench-201 cell holding only the ops of one architecture that reach its output."""

    def __init__(self, channels: int, ops: tuple[int, ...]):
        super().__init__()
        self.edges = nn.ModuleDict()
        self.plan: list[tuple[str, int, int]] = []  # (op key, to node, from node)
        live, present = _live_nodes(ops), [True, False, False, False]
        for edge, (to, src) in enumerate(EDGES):
            op = ops[edge]
            if op == NONE or not live[to] or (not present[src] and op in (SKIP, POOL)):
                continue  # no effect on the output: 'none', a dead node, or zero passed on
            key = f"{_OP_KEYS[op]}_{edge}"
            if op == SKIP:
                self.edges[key] = nn.Identity()
            elif op == POOL:  # one ONNX op, same as the super-network's BoxAverage3x3
                self.edges[key] = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
            elif present[src]:
                self.edges[key] = ReLUConvBN(channels, channels, 1 if op == CONV1 else 3)
            else:  # the cell input stands in for the zero node: only its shape is used
                self.edges[key], src = ZeroInputConv(channels), 0
            self.plan.append((key, to, src))
            present[to] = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x, None, None, None]
        for key, to, src in self.plan:
            out = self.edges[key](nodes[src])
            nodes[to] = out if nodes[to] is None else nodes[to] + out
        return nodes[3] if nodes[3] is not None else torch.zeros_like(x)


class NB201SubNet(nn.Module):
    """The NAS-Bench-201 macro skeleton around cells of one architecture (``ops``: op names)."""

    def __init__(
        self, channels: int, cells: int, num_classes: int, in_channels: int, ops: list[str]
    ):
        super().__init__()
        if len(ops) != len(EDGES) or not set(ops) <= set(OPS):
            raise ValueError(f"ops must be {len(EDGES)} names from {OPS}, got {ops!r}")
        indices = tuple(OPS.index(op) for op in ops)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        layers: list[nn.Module] = []
        width = channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(width, 2 * width))
                width *= 2
            layers.extend(SubCell(width, indices) for _ in range(cells))
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(images)))

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        """The spec entries naming the chosen op of every edge."""
        return {"ops": [OPS[i] for i in arch.argmax(-1).tolist()]}

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        """This sub-network's state dict taken from the super-network's (chosen ops only)."""
        source = net.state_dict()
        return {key: source[_SUPER_KEY.sub(r".\1.\2.", key)] for key in self.state_dict()}


# --- SupNet-M (resnet) --------------------------------------------------------------------------


def _kept(mask: str, size: int) -> list[int]:
    """Kept channel indices of a '0'/'1' mask string of length ``size``."""
    if len(mask) != size or set(mask) - {"0", "1"}:
        raise ValueError(f"expected a mask of {size} '0'/'1' characters, got {mask!r}")
    return [i for i, c in enumerate(mask) if c == "1"]


class SubBranch(nn.Module):
    """A residual branch cut to its kept input channels and kept middle channels."""

    def __init__(self, c_in: int, c_out: int, stride: int, kept_in: list[int], mid: list[int]):
        super().__init__()
        self.kept_in, self.kept_mid = kept_in, mid
        self.select = len(kept_in) < c_in  # gather the kept input channels (else take all)
        self.register_buffer("index", torch.tensor(kept_in, dtype=torch.long), persistent=False)
        self.conv1 = nn.Conv2d(len(kept_in), len(mid), 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(len(mid))
        self.conv2 = nn.Conv2d(len(mid), c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.select:
            x = x.index_select(1, self.index)
        h = torch.relu(self.bn1(self.conv1(torch.relu(x))))
        return self.bn2(self.conv2(h))

    def weights_from(self, branch: Branch) -> dict[str, torch.Tensor]:
        """The super-network ``branch``'s weights sliced to the kept channels."""
        kin, mid = torch.tensor(self.kept_in), torch.tensor(self.kept_mid)
        state = {}
        for key, value in branch.state_dict().items():
            if key == "conv1.weight":
                value = value[mid][:, kin]
            elif key == "conv2.weight":
                value = value[:, mid]
            elif key.startswith("bn1.") and value.dim():
                value = value[mid]
            state[key] = value
        return state


class SubBlock(nn.Module):
    """Shortcut plus half of each kept branch; removed branches are absent."""

    def __init__(self, c_in: int, c_out: int, stride: int, branches: list[dict | None]):
        super().__init__()
        self.branches = nn.ModuleDict(
            {
                str(r): SubBranch(c_in, c_out, stride, _kept(b["in"], c_in), _kept(b["mid"], c_out))
                for r, b in enumerate(branches)
                if b is not None
            }
        )
        same = c_in == c_out and stride == 1
        self.shortcut = nn.Identity() if same else ShakeShortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shortcut(x)
        for branch in self.branches.values():
            out = out + 0.5 * branch(x)
        return out


class ResNetSubNet(nn.Module):
    """SupNet-M with its branches cut to one architecture (``branches``: per block, per branch,
    the kept input and middle channel masks, or None for a removed branch)."""

    def __init__(
        self,
        width: int,
        blocks: int,
        num_classes: int,
        in_channels: int,
        stem_channels: int,
        branches: list[list[dict | None]],
    ):
        super().__init__()
        if len(branches) != 3 * blocks or any(len(b) != 2 for b in branches):
            raise ValueError(f"branches must list 2 branches for each of {3 * blocks} blocks")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(stem_channels),
        )
        self.blocks = nn.Sequential()
        c_in = stem_channels
        for stage in range(3):
            c_out = width * 2**stage
            for index in range(blocks):
                stride = 2 if stage and not index else 1
                self.blocks.append(SubBlock(c_in, c_out, stride, branches[len(self.blocks)]))
                c_in = c_out
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(images))
        return self.head(nn.functional.adaptive_avg_pool2d(torch.relu(x), 1).flatten(1))

    @staticmethod
    def kept(net: SuperNet, arch: torch.Tensor) -> dict[str, Any]:
        """The spec entries: kept input and middle channel masks of every surviving branch."""
        arch = net.canonical(arch).detach().cpu()
        masks = [
            "".join("1" if g else "0" for g in arch[net.offsets[i] : net.offsets[i + 1]].tolist())
            for i in range(len(net.convs))
        ]
        pairs = [
            {"in": masks[c], "mid": masks[c + 1]} if "1" in masks[c] else None
            for c in range(0, len(masks), 2)
        ]
        return {"branches": [pairs[b : b + 2] for b in range(0, len(pairs), 2)]}

    def weights_from(self, net: SuperNet) -> dict[str, torch.Tensor]:
        """This sub-network's state dict: the super-network's, branches sliced or left out."""
        state = {k: v for k, v in net.state_dict().items() if ".branches." not in k}
        for b, block in enumerate(self.blocks):
            for r, branch in block.branches.items():
                source = branch.weights_from(net.blocks[b].branches[int(r)])
                state.update({f"blocks.{b}.branches.{r}.{k}": v for k, v in source.items()})
        return state
