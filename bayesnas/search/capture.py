"""Step capture (``--capture``): the network's part of the SVI step compiled into static graphs.

At the sizes NAS searches at, a GPU step of the super-network is bound by kernel launches (a few
per op, per edge, per cell), not by arithmetic (docs/benchmarks.md). ``compile`` runs the three
network calls of the Pyro model (the forward, the gated and the ungated squared weight norms of
the prior) through ``torch.compile`` (inductor: fused kernels, on CPU as on CUDA);
``cuda-graphs`` uses its ``reduce-overhead`` mode, which also replays them as CUDA graphs, one
launch per graph. The loss stays Pyro's ELBO: the guide, the sites, the KL and the likelihood
run as they do without capture; autograd runs the compiled backward; the SGD step is eager.

A compiled graph needs shapes and control flow fixed by the time it runs, so a step is
captured only when they are:

- nb201 decides per (edge, op) from each batch's draws which examples compute it (one host read
  per forward, data-dependent shapes). Under capture it uses q's *support plan* instead (the
  space's ``support_plan`` hook): every op q can draw runs on the whole batch with its
  per-example weight, the exact mixture. It is read once per epoch, as only pruning changes it.
- Bernoulli-gated spaces (resnet, densenet121, resnet50) multiply channels by their gates:
  static as they are.
- Anything else (another space, nb201 while ``--aux-skip`` changes its weight every step,
  ``--sync-bn``, whose BatchNorm all-reduces inside the forward) runs eager, with one note
  saying why.

Before the first compiled forward of a plan, one eager pass without gradients fills the
network's lazy caches, so that the graph is traced once, not twice.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from bayesnas.distributed.syncbn import GlobalBatchNorm2d
from bayesnas.errors import UserError
from bayesnas.spaces import SuperNet

NET_CALLS = ("forward", "gated_sq_norms", "ungated_sq_norm")  # what the model asks of the net
_TORCH_MODE = {"compile": "default", "cuda-graphs": "reduce-overhead"}
_TRACER_WARNING = "The .grad attribute of a Tensor that is not a leaf Tensor"
PLANS_KEPT = 64  # compiled graphs kept per call: one per plan (pruning), per draw kind


def compiled(fn: Callable[..., Any], mode: str) -> Callable[..., Any]:
    """``fn`` compiled by torch.compile in ``mode``, shapes static (every batch is full).

    Tracing reads ``.grad`` of the relaxed gates (not a leaf), which warns; that warning is
    about torch's tracer, not about the user's run, so it is silenced here."""
    graph = torch.compile(fn, mode=mode, dynamic=False)

    def call(*args: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_TRACER_WARNING)
            return graph(*args)

    return call


def check_device(mode: str, device: torch.device) -> None:
    """``cuda-graphs`` records CUDA graphs: a one-line error anywhere else."""
    if mode == "cuda-graphs" and device.type != "cuda":
        raise UserError(
            f"--capture cuda-graphs needs a CUDA device, and this search runs on {device}: "
            "use --capture compile (torch.compile, also on CPU) or --capture none"
        )


class StepCapture:
    """Which network calls a training step runs compiled; ``mode`` "none" changes nothing."""

    def __init__(
        self,
        mode: str,
        net: SuperNet,
        gate_logits: torch.Tensor,
        device: torch.device,
        note: Callable[[str], None],
    ):
        check_device(mode, device)
        self.mode, self.net, self.gate_logits, self.note = mode, net, gate_logits, note
        self.planned = net.support_plan(gate_logits) is not None  # q's support fixes shapes
        self.static = self.planned or net.layout.kind == "bernoulli"
        self.sync_bn = any(isinstance(m, GlobalBatchNorm2d) for m in net.modules())
        self.plan: list[list[Any]] | None = None  # the same object while q's support holds
        self.plan_key: tuple[Any, ...] = ()
        self.filled: set[tuple[Any, ...]] = set()  # (plan, input shape) whose caches are filled
        self.noted: set[str] = set()
        self.calls: dict[str, Callable[..., Any]] = {}
        if mode != "none":
            limit = torch._dynamo.config
            limit.recompile_limit = max(limit.recompile_limit, PLANS_KEPT)
            self.calls = {
                name: compiled(getattr(net, name), _TORCH_MODE[mode]) for name in NET_CALLS
            }
            self.calls["forward"] = self._forward(self.calls["forward"])

    def refresh(self) -> None:
        """Read q's support again (at every epoch start: pruning may have shrunk it)."""
        if self.mode != "none" and self.planned:
            plan = self.net.support_plan(self.gate_logits)
            if plan is not None and plan != self.plan:
                self.plan, self.plan_key = plan, tuple(map(tuple, plan))

    def _eager_because(self) -> str | None:
        """Why this step cannot be captured (None: it can)."""
        if not self.static:
            return (
                f"space {self.net.space_name} decides its shapes from each batch: "
                "its steps run eager"
            )
        if self.sync_bn:
            return "--sync-bn all-reduces BatchNorm statistics inside the forward: steps run eager"
        if self.net.aux_skip:
            return "--aux-skip changes the network every step: those steps run eager"
        if self.net.skip_dropout:
            return "--skip-dropout changes the network every step: those steps run eager"
        return None

    def _forward(self, call: Callable[..., Any]) -> Callable[..., Any]:
        """``call`` (the compiled forward), after one eager evaluation-mode pass per plan and
        input shape: it fills the network's lazy caches (e.g. the pooling's divisor), which
        the compiled graph would otherwise fill in its first call and be traced again for. It
        changes no state: no gradients, and BatchNorm reads its running statistics."""

        def forward(images: torch.Tensor, gates: torch.Tensor) -> torch.Tensor:
            key = (self.plan_key, *images.shape)
            if key not in self.filled:
                self.filled.add(key)
                net, training = self.net, self.net.training
                with torch.no_grad():
                    net.eval()
                    type(net).forward(net, images, gates)
                    net.train(training)
            return call(images, gates)

        return forward

    @contextmanager
    def step(self) -> Iterator[bool]:
        """The body computes the step's loss; yields whether its network calls are compiled."""
        if self.mode == "none":
            yield False
            return
        why = self._eager_because()
        if why is not None:
            if why not in self.noted:
                self.noted.add(why)
                self.note(f"--capture {self.mode}: {why}")
            yield False
            return
        if self.mode == "cuda-graphs":  # a new training iteration: earlier outputs may be reused
            torch.compiler.cudagraph_mark_step_begin()
        net = self.net
        if self.planned:
            if self.plan is None:
                self.refresh()
            net.fixed_plan = self.plan
        for name, call in self.calls.items():
            setattr(net, name, call)  # an instance attribute: the state dict is unchanged
        try:
            yield True
        finally:
            for name in self.calls:
                net.__dict__.pop(name, None)
            if self.planned:
                net.fixed_plan = None
