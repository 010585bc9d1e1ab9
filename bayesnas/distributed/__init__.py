"""Data-parallel runs under torchrun: the process group, each rank's device, and the collectives
a search and sampling need (averaged gradients, agreed decisions, gathered per-rank state).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them (or with
WORLD_SIZE 1) a run is one process and every collective here is a no-op. Tensors travel on the
run's backend (NCCL on CUDA, Gloo on CPU); host-side decisions and Python objects travel on a
Gloo group, so that agreeing on "checkpoint now" never waits on the GPU queue.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist

from bayesnas.device import resolve_device
from bayesnas.errors import UserError

T = TypeVar("T")
TIMEOUT = timedelta(minutes=30)  # a rank that hangs (not dies) stops the job after this
_COMMUNICATION = ("gloo", "nccl", "connection", "timed out", "processgroup", "broken pipe")


class RankError(UserError):
    """An error of this rank alone (the CLI prints it on every rank; other user errors are the
    same on every rank and printed by rank 0 only)."""

    every_rank = True


class RankLost(RankError):
    """Another rank of a data-parallel job died or stopped answering: this rank stops too."""

    def __init__(self, rank: int, world: int, exc: BaseException):
        reason = str(exc).split("\n")[0].split("] ")[-1].split(". ")[0].rstrip(".")[:120]
        super().__init__(
            f"rank {rank} of {world} lost contact with another rank ({reason}); the job stops and "
            "its last checkpoint stays valid: resume it with the same torchrun command and --resume"
        )


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: rank, world size, and the groups to talk over."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: Any = None  # tensors on the run's device (NCCL or Gloo)
    control: Any = None  # host values and Python objects (always Gloo)

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place (every rank gets the same bits); returns it."""
        if self.active:
            with self.guard():
                dist.all_reduce(tensor, group=self.group)
        return tensor

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true if it is true on any rank: a decision every rank takes alike."""
        if not self.active:
            return tuple(flags)
        values = torch.tensor([float(f) for f in flags])
        with self.guard():
            dist.all_reduce(values, op=dist.ReduceOp.MAX, group=self.control)
        return tuple(bool(v) for v in values.tolist())

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
        if not self.active:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.main else None
        with self.guard():
            dist.gather_object(obj, out, dst=0, group=self.control)
        return out

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        with self.guard():
            dist.all_gather_object(out, obj, group=self.control)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        with self.guard():
            dist.broadcast_object_list(box, src=0, group=self.control)
        return box[0]

    def broadcast_tensors(self, tensors: Sequence[torch.Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's values (parameters at the start of a run)."""
        if self.active:
            with self.guard(), torch.no_grad():
                for tensor in tensors:
                    dist.broadcast(tensor, src=0, group=self.group)

    def on_main(self, action: Callable[[], T]) -> T | None:
        """Run ``action`` on rank 0 alone (a write); a UserError it raises is raised on every
        rank, so that none waits for a rank that stopped. Returns its result on rank 0."""
        if not self.active:
            return action()
        result, error = None, None
        if self.main:
            try:
                result = action()
            except UserError as exc:
                error = exc
        message = self.broadcast(None if error is None else str(error))
        if error is not None:
            raise error
        if message is not None:
            raise UserError(message)
        return result

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Turn a failed collective (a dead or hung rank) into the one-line RankLost."""
        try:
            yield
        except RuntimeError as exc:
            if self.active and any(sign in str(exc).lower() for sign in _COMMUNICATION):
                raise RankLost(self.rank, self.world, exc) from None
            raise


SINGLE = Dist()


def from_env(device_name: str) -> tuple[Dist, torch.device]:
    """This process's Dist and device. Under torchrun (WORLD_SIZE > 1) the process group is
    joined once (NCCL for CUDA, Gloo for CPU) and each rank takes GPU LOCAL_RANK."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return SINGLE, resolve_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = _rank_device(device_name, local)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
        atexit.register(_leave)
    if dist.get_world_size() != world:
        raise UserError(f"WORLD_SIZE is {world} but the process group has {dist.get_world_size()}")
    return _joined(rank, world, local, device), device


_GROUPS: dict[str, Any] = {}


def joined() -> bool:
    """Whether this process is a rank of a torchrun job (its process group initialised)."""
    return dist.is_available() and dist.is_initialized()


def exit_now(code: int) -> NoReturn:
    """End a rank: destroy the process group, flush the output, and exit without the
    interpreter's teardown, where C++ destructors of Gloo's threads can abort the process
    ("terminate called without an active exception") after the work is done and written."""
    _leave()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _leave() -> None:
    """Destroy the process group before the interpreter exits: left to C++ static destructors,
    Gloo's threads can abort the process ("terminate called without an active exception")."""
    _GROUPS.clear()
    if dist.is_initialized():
        dist.destroy_process_group()


def _joined(rank: int, world: int, local: int, device: torch.device) -> Dist:
    """The Dist of an initialised process group; the Gloo control group is made once."""
    if "control" not in _GROUPS:
        nccl = dist.get_backend() == "nccl"
        _GROUPS["control"] = dist.new_group(backend="gloo") if nccl else dist.group.WORLD
    if device.type == "cuda" and dist.get_backend() != "nccl":
        raise UserError("this job's process group uses Gloo (CPU); CUDA ranks need NCCL")
    return Dist(rank, world, local, dist.group.WORLD, _GROUPS["control"])


def _rank_device(name: str, local_rank: int) -> torch.device:
    """Rank ``local_rank``'s device: GPU LOCAL_RANK when CUDA is asked for (or 'auto' finds it)."""
    device = resolve_device(name)
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise RankError(
            f"--device {name} names one GPU, but under torchrun each rank takes GPU LOCAL_RANK: "
            "pass --device cuda (or auto), and choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    if local_rank >= torch.cuda.device_count():
        raise RankError(
            f"rank with LOCAL_RANK {local_rank} has no GPU: this node sees "
            f"{torch.cuda.device_count()}; lower --nproc-per-node"
        )
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s random streams (gate noise, augmentation): distinct per rank,
    fixed by (seed, rank), so a run with the same world size repeats itself."""
    import numpy as np

    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
