"""The step loop a search and a training run share: where a run stands, and its run/epoch skeleton.

A run trains epoch by epoch from a ``LoopState`` (the epoch, the steps done in it, the running
sums, the seconds trained). A signal (Ctrl-C, SIGTERM) asks to stop after the current step, which
is then checkpointed; a second one stops at once. A checkpoint also falls due every few minutes by
rank 0's clock, and every rank takes both decisions alike. The bar's figures refresh at most
once a second, as each refresh reads the sums back from the device.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from bayesnas.distributed import SINGLE, Dist
from bayesnas.errors import Interrupted
from bayesnas.progress import step_bar

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class LoopState:
    """Where a run stands: its epoch, the steps done in it, the epoch's running sums (on the
    device, read once per epoch) and the seconds trained so far."""

    sums: dict[str, torch.Tensor]
    epoch: int = 0
    step_in_epoch: int = 0
    elapsed: float = 0.0

    @classmethod
    def restored(cls, saved: dict[str, Any], device: torch.device) -> LoopState:
        """Where a checkpoint's run stood (``saved``: checkpoint.pt's content)."""
        return cls(
            sums={k: torch.tensor(v, device=device) for k, v in saved["sums"].items()},
            epoch=saved["epoch"],
            step_in_epoch=saved["step_in_epoch"],
            elapsed=saved["elapsed"],
        )

    def global_step(self, steps_per_epoch: int) -> int:
        """The number of steps done since the run's start."""
        return self.epoch * steps_per_epoch + self.step_in_epoch


class StepLoop:
    """The run/epoch skeleton of a search and a training run: a subclass gives its batches, its
    step, the bar's figures, the finiteness check, the checkpoint and the epoch's end."""

    def __init__(
        self,
        run_dir: Path,
        loop: LoopState,
        steps_per_epoch: int,
        epochs: int,
        checkpoint_minutes: float,
        dist: Dist = SINGLE,
    ):
        self.run_dir, self.loop, self.dist = Path(run_dir), loop, dist
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.total_steps = steps_per_epoch * epochs
        self.checkpoint_minutes = checkpoint_minutes
        self._stop_requested = False
        self._signal: int = signal.SIGINT
        self._last_checkpoint, self._last_shown = time.monotonic(), 0.0

    # -- where the run stands (``loop``'s fields) ---------------------------------------------

    @property
    def epoch(self) -> int:
        return self.loop.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.loop.epoch = value

    @property
    def step_in_epoch(self) -> int:
        return self.loop.step_in_epoch

    @step_in_epoch.setter
    def step_in_epoch(self, value: int) -> None:
        self.loop.step_in_epoch = value

    @property
    def sums(self) -> dict[str, torch.Tensor]:
        return self.loop.sums

    @sums.setter
    def sums(self, value: dict[str, torch.Tensor]) -> None:
        self.loop.sums = value

    @property
    def global_step(self) -> int:
        return self.loop.global_step(self.steps_per_epoch)

    # -- the skeleton ---------------------------------------------------------------------------

    def _handle_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl-C and SIGTERM (SLURM, docker stop, timeout): checkpoint after this step."""
        if self._stop_requested:  # a second signal stops at once
            raise self._stop_at_once(signum)
        self._stop_requested, self._signal = True, signum

    def _stop_at_once(self, signum: int) -> BaseException:
        """What a second signal raises: no checkpoint is written after it."""
        return Interrupted(None, signum)

    @contextmanager
    def _running(self, show: bool) -> Iterator[tqdm]:
        """The signal handlers and the step bar of one ``run``, both undone when it ends."""
        previous = {
            sig: signal.signal(sig, self._handle_sigint) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        self._last_checkpoint = time.monotonic()
        bar = step_bar(self.total_steps, self.global_step, show)
        try:
            yield bar
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_epochs(self, bar: tqdm) -> None:
        """Train from the current state to the last epoch."""
        while self.loop.epoch < self.epochs:
            self._run_epoch(bar)

    def _run_epoch(self, bar: tqdm) -> None:
        """The current epoch from its next step: checkpoint when due or asked, then its end."""
        loop = self.loop
        started = counted = time.monotonic()  # epoch start; time already added to elapsed
        images_before = float(loop.sums["images"])
        for images, labels in self._epoch_batches():
            self._train_step(images, labels)
            loop.step_in_epoch += 1
            bar.update(1)
            now = time.monotonic()
            self._show(bar, now, now - started, images_before)
            stop, due = self._agree(now)
            if stop or due:
                self._check_finite()
                loop.elapsed, counted = loop.elapsed + now - counted, now
                self._save_checkpoint()
                if stop:
                    raise Interrupted(self.run_dir, self._signal)
        self._end_epoch(started, counted, images_before)

    def _agree(self, now: float) -> tuple[bool, bool]:
        """Whether to stop (a signal on any rank) and whether a checkpoint is due (rank 0's
        clock), decided alike on every rank."""
        due = now - self._last_checkpoint > 60 * self.checkpoint_minutes
        stop, due = self.dist.any(self._stop_requested, due and self.dist.main)
        return stop, due

    def _show(self, bar: tqdm, now: float, seconds: float, images_before: float) -> None:
        """The bar's figures, refreshed at most once a second (each costs a device read)."""
        if bar.disable or now - self._last_shown <= 1.0:
            return
        self._last_shown = now
        bar.set_postfix_str(self._postfix(seconds, images_before), refresh=False)

    def _checkpointed(self) -> None:
        """Restart the clock of time-based checkpoints (after each checkpoint)."""
        self._last_checkpoint = time.monotonic()

    # -- what a subclass gives ----------------------------------------------------------------

    def _epoch_batches(self) -> Iterable[Batch]:
        """The current epoch's batches from its next step."""
        raise NotImplementedError

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One step on a batch at ``global_step``, its figures added to the sums."""
        raise NotImplementedError

    def _postfix(self, seconds: float, images_before: float) -> str:
        """The bar's figures, ``seconds`` into the epoch."""
        raise NotImplementedError

    def _check_finite(self) -> None:
        """Stop before a diverged state is checkpointed."""
        raise NotImplementedError

    def _save_checkpoint(self) -> None:
        """Write checkpoint.pt (and restart the checkpoint clock)."""
        raise NotImplementedError

    def _end_epoch(self, started: float, counted: float, images_before: float) -> None:
        """The epoch's end: its metrics row, the next epoch's state, a checkpoint."""
        raise NotImplementedError
