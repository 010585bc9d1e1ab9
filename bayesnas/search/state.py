"""A search's saved state: checkpoint.pt for an exact resume, posterior.pt at the end.

A checkpoint is plain data: model, guide and optimizer, the position in the run, the running
sums, and the random state. In a data-parallel run it also holds every rank's own random
state and BatchNorm buffers (``ranks``), gathered on rank 0, which alone writes; a resume
with the same world size gives each rank its own back, so the run continues exactly, and
another world size is refused (its shards and random streams would differ).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from bayesnas import rundir
from bayesnas.config import SearchConfig
from bayesnas.data.loading import SearchParts
from bayesnas.device import rng_state, set_rng_state
from bayesnas.errors import UserError
from bayesnas.loop import LoopState
from bayesnas.search.parallel import batchnorm_buffers, load_batchnorm_buffers
from bayesnas.search.setup import SearchSetup


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    """A configuration as checked on resume: its defaults filled in, the device left out."""
    try:
        full = SearchConfig.from_json(config).to_json()
    except TypeError:
        return config
    return {k: v for k, v in full.items() if k != "device"}


def local_state(net: nn.Module, device: torch.device) -> dict[str, Any]:
    """What only this rank holds: its random state and (without --sync-bn) its BatchNorm
    running statistics, estimated from its own shards since the last epoch end."""
    return {"rng": rng_state(device), "batchnorm": batchnorm_buffers(net)}


def checkpoint(
    s: SearchSetup, loop: LoopState, ranks: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """Everything an exact resume needs, as plain data (``ranks``: every rank's local state)."""
    state = {
        "format": rundir.FORMAT_VERSION,
        "kind": "checkpoint",
        "config": s.config.to_json(),
        "epoch": loop.epoch,
        "step_in_epoch": loop.step_in_epoch,
        "model": s.program.model.state_dict(),
        "guide": s.program.guide.state_dict(),
        "optimizer": s.optimizer.state_dict(),
        "rng": rng_state(s.device),
        "sums": {k: float(v) for k, v in loop.sums.items()},
        "elapsed": loop.elapsed,
        "threads": torch.get_num_threads(),  # CPU results depend on it: a resume restores it
        "world_size": s.dist.world,
        "versions": rundir.versions(s.device),
    }
    if s.dist.active:
        state["ranks"] = ranks
    return state


def restore(s: SearchSetup, state: dict[str, Any]) -> LoopState:
    """Load a checkpoint into ``s``'s program and optimizer, the shared state, then this rank's
    own; returns where the run stands."""
    if _comparable(state.get("config", {})) != _comparable(s.config.to_json()):
        raise UserError("checkpoint.pt was written for another configuration than config.json")
    world = state.get("world_size", 1)
    if world != s.dist.world:
        raise UserError(
            f"checkpoint.pt was written by {world} process(es) and this resume runs "
            f"{s.dist.world}: resume with the same world size (torchrun --nnodes x "
            f"--nproc-per-node = {world}), as each rank's data shard and random state are in it"
        )
    try:
        s.program.model.load_state_dict(state["model"])
        s.program.guide.load_state_dict(state["guide"])
        s.optimizer.load_state_dict(state["optimizer"])
        if s.dist.active:
            load_batchnorm_buffers(s.program.net, state["ranks"][s.dist.rank]["batchnorm"])
    except (KeyError, RuntimeError, ValueError, IndexError) as exc:
        raise UserError(f"checkpoint.pt does not fit this network: {str(exc)[:200]}") from None
    loop = LoopState.restored(state, s.device)
    own = state["ranks"][s.dist.rank]["rng"] if s.dist.active else state["rng"]
    set_rng_state(own, s.device)
    restore_threads(state.get("threads"))
    return loop


def restore_threads(threads: int | None) -> None:
    """Use the intra-op thread count a run was checkpointed with: CPU reductions split by it,
    so another count makes a resume differ from the uninterrupted run in the last bits."""
    if threads is None or threads == torch.get_num_threads():
        return
    rundir.note(
        f"using {threads} torch thread(s) as the run did before (not {torch.get_num_threads()}), "
        "so that the resume is exact"
    )
    torch.set_num_threads(threads)


def posterior(
    s: SearchSetup,
    loop: LoopState,
    data: SearchParts,
    arch_prior_logits: torch.Tensor | None,
    mode_text: str | None,
    val: dict[str, Any],
    gates: dict,
) -> dict:
    """posterior.pt: the trained program with everything `sample` and `plot` need."""
    p, info = s.program, data.info
    return {
        "format": rundir.FORMAT_VERSION,
        "kind": "posterior",
        "config": s.config.to_json(),
        "space": p.net.space_name,
        "space_config": p.net.config,
        "kl_n": s.kl_n,
        "dataset": {
            "name": info.name,
            "num_classes": info.num_classes,
            "channels": info.channels,
            "train_images": len(data.train),
            "val_images": len(data.val),
            "held_out_images": 0 if data.held_out is None else len(data.held_out),  # --gate-data
            "image_size": info.image_size,
            "mean": list(info.mean),
            "std": list(info.std),
        },
        "net": p.net.state_dict(),
        "gate_logits": p.guide.gate_logits.detach().cpu(),
        "arch_prior_logits": arch_prior_logits,  # the zero-cost prior's (None: flat)
        "mode": mode_text,
        "mode_val_acc": val["accuracy"],
        "mode_val_nll": val["nll"],
        "gates": gates,
        "seconds": loop.elapsed,
        "world_size": s.dist.world,
        "versions": rundir.versions(s.device),
    }
