"""What a search space is: the super-network interface and the record a space registers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bayesnas.errors import UserError
from bayesnas.gates import GateLayout


class SuperNet(nn.Module, ABC):
    """A weight-sharing network whose sub-networks are selected by a gate tensor.

    Gates come in two forms: ``forward(images, gates)`` takes one (possibly relaxed) gate tensor
    per example, as in training; ``forward_architecture(images, arch)`` takes one hard gate tensor
    shared by the batch and computes only what it keeps, as in ranking and serving.
    """

    space_name: str
    layout: GateLayout
    # set by the search's schedule each step; only a space whose record lists them in
    # ``search_extras`` reads them (its skip ops): elsewhere the config keeps them at 0
    aux_skip: float = 0.0
    skip_dropout: float = 0.0
    # q's support plan a captured step fixes (see ``support_plan``); None: decided per batch
    fixed_plan: Any = None

    def __init__(self, **config: Any):
        super().__init__()
        self.config = config

    @abstractmethod
    def init_gate_logits(self, init_drop: float) -> torch.Tensor:
        """The guide's initial gate parameters (keep-logits per group, or op logits per edge)."""

    @abstractmethod
    def forward(self, images: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
        """Class logits with per-example gates ``[B, *layout.shape]``."""

    @abstractmethod
    def forward_architecture(self, images: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        """Class logits of one sub-network ``arch`` (hard gates); dropped parts cost nothing."""

    @abstractmethod
    def gated_sq_norms(self) -> torch.Tensor:
        """Squared norm of the weights each gate element switches, shaped ``layout.shape``."""

    @abstractmethod
    def canonical(self, arch: torch.Tensor) -> torch.Tensor:
        """The hard gate tensor with every part that cannot affect the output switched off."""

    @abstractmethod
    def mode(self, gate_logits: torch.Tensor) -> torch.Tensor:
        """The most probable architecture under the guide's parameters."""

    @abstractmethod
    def describe(self, arch: torch.Tensor) -> str:
        """The architecture in the space's notation (e.g. a NAS-Bench-201 string)."""

    @abstractmethod
    def gate_statistics(self, gate_logits: torch.Tensor) -> dict[str, Any]:
        """Per edge or group: keep or op probabilities and entropies, as plain JSON data."""

    @abstractmethod
    def count_parameters(self, arch: torch.Tensor) -> int:
        """Parameters of the physically smaller sub-network ``arch`` (dropped parts removed)."""

    @abstractmethod
    def encode(self, arch: torch.Tensor) -> str:
        """A compact exact text form of ``arch``, for samples.jsonl; ``decode`` inverts it."""

    @abstractmethod
    def decode(self, text: str) -> torch.Tensor:
        """The hard gate tensor written by ``encode``."""

    def ungated_sq_norm(self) -> torch.Tensor:
        """Squared norm of the conv and linear weights no gate switches (Gaussian prior only)."""
        gated = {id(p) for p in self.gated_parameters()}
        total = torch.zeros((), device=self._device())
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear) and id(module.weight) not in gated:
                total = total + module.weight.square().sum()
        return total

    @abstractmethod
    def gated_parameters(self) -> list[nn.Parameter]:
        """The weights that sit under a gate (their prior is charged by ``gated_sq_norms``)."""

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    # -- optional hooks: the defaults say "this space has no such thing" --------------------

    def gate_costs(self, metric: str, image_size: int) -> tuple[float, torch.Tensor]:
        """``(base, per_gate)`` in millions of ``metric`` (flops or params), additive over gates
        (``spaces/costs.py``), for the cost-aware prior; the default: no such decomposition."""
        raise UserError(
            f"space {self.space_name!r} reports no additive cost per gate, so it has no "
            "cost-aware prior: search without --cost"
        )

    def latency_table(self, image_size: int) -> tuple[float, torch.Tensor] | None:
        """``(base, per_gate)`` in ms per image on the net's device (``spaces/latency.py``);
        None (the default): the space's latency does not add up per gate."""
        return None

    def share_plan(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Under torchrun: ``reduce`` sums a tensor over ranks, for a space that decides what to
        compute from the batch's gates (all ranks must decide alike); the default: nothing."""

    def support_plan(self, gate_logits: torch.Tensor) -> list[list[Any]] | None:
        """What q's support lets a step compute, as fixed lists, or None (the default): a
        captured step sets it as ``fixed_plan`` so its shapes do not depend on the batch."""
        return None

    def figure_widths(self, arch: torch.Tensor) -> list[dict[str, Any]]:
        """The rows the report's "widths" figure draws: per block and branch, ``block``,
        ``branch``, ``kept_in``, ``full_in``, ``kept_mid``, ``full_mid``."""
        raise NotImplementedError(f"space {self.space_name!r} has no widths figure")


@dataclass(frozen=True)
class SpaceOption:
    """One integer option of a space, offered as the CLI flag ``--NAME`` and checked by config.

    The CLI flag takes 1 to ``maximum`` (the largest of the spaces that share the flag); ``check``
    holds each space's own bounds, before any network is built: ``maximum`` is what a real search
    could use (a width, a count of cells or blocks), so that a typo cannot ask for terabytes.
    """

    name: str
    help: str
    minimum: int = 1
    maximum: int = 1024

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any, space: str) -> None:
        """UserError, naming the flag and the bound, unless ``value`` is a whole number within
        [minimum, maximum] (a value read from a file may be anything)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{self.flag} must be a whole number, got {value!r}")
        if value < self.minimum:
            raise UserError(f"{self.flag} must be at least {self.minimum}, got {value}")
        if value > self.maximum:
            raise UserError(
                f"{self.flag} must be at most {self.maximum} in space {space}, got {value}"
            )


@dataclass(frozen=True)
class TrainRecipe:
    """How ``bayesnas train --arch`` trains an architecture string of a space.

    - ``reads(text)``: whether ``text`` is written in this space's ``notation`` (by its form);
    - ``parse(text)``: the canonical text and what the sub-network keeps (ValueError if
      malformed); ``malformed`` begins the one-line error for ``--arch``;
    - ``size``: the options of the network an ``--arch`` string trains unless told otherwise;
    - ``presets``: train presets this space adds (its paper's protocol);
    - ``extras``: TrainConfig fields only this space's networks use, and ``subnet_options``
      what the training network adds to the exported one when they are set.
    """

    notation: str
    reads: Callable[[str], bool]
    parse: Callable[[str], tuple[str, dict[str, Any]]]
    size: dict[str, int]
    malformed: str = "malformed --arch"
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: tuple[str, ...] = ()
    subnet_options: Callable[[dict[str, Any]], dict[str, Any]] = lambda settings: {}


@dataclass(frozen=True)
class Space:
    """Everything the rest of bayesnas asks of a search space, registered under ``name``.

    - ``factory(**options)`` builds the super-network (options left out keep their defaults);
      ``network`` is the class it returns (its docstring's first line is the space's summary).
    - ``options``: the user-facing options (CLI flags, validated without building the network).
    - ``subnet``: returns the class of the exact standalone sub-network for export; it is built
      from a JSON spec as ``cls(**config, **cls.kept(net, arch))`` and filled by
      ``weights_from(net)`` (None: the space cannot be exported).
    - ``figure``: the architecture figure of the report: "cell" (a NAS-Bench-201-style cell),
      "widths" (channels kept per block and branch, from ``SuperNet.figure_widths``),
      "genotype" (a DARTS genotype's normal and reduction cells), or None (the text).
    - ``drawing(text)``: for "cell", the ``(from node, to node, op)`` edges of an architecture's
      text; for "genotype", its parsed genotype (``.normal``/``.reduce`` pairs).
    - ``sample_defect(row)``: what is wrong with a samples.jsonl row of this space (None: fine).
    - ``presets``: per search preset, the values this space sets over it (its sizes and what
      they need), applied by ``config.build_config`` when the search uses this space.
    - ``arch_priors``: the architecture priors (``bayesnas.priors``) its gates support; the
      zero-cost prior needs op gates per edge (categorical, or DARTS's pairs).
    - ``search_extras``: SearchConfig fields only this space acts on (e.g. ``aux_skip``).
    - ``recipe``: how ``train --arch`` reads and trains its architecture strings (None: only
      its exports train).
    """

    name: str
    factory: Callable[..., SuperNet]
    network: type[SuperNet]
    options: tuple[SpaceOption, ...] = ()
    subnet: Callable[[], type[nn.Module]] | None = None
    figure: str | None = None
    sample_defect: Callable[[dict[str, Any]], str | None] | None = None
    presets: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    arch_priors: tuple[str, ...] = ("uniform",)
    drawing: Callable[[str], Any] | None = None
    search_extras: tuple[str, ...] = ()
    recipe: TrainRecipe | None = None

    @property
    def summary(self) -> str:
        """The first line of the network class's docstring."""
        return (self.network.__doc__ or self.name).strip().splitlines()[0]

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(option.name for option in self.options)
