"""The SVI loop: train the super-network's posterior, log each epoch, checkpoint, resume.

Lifecycle (NNI-style): ``Searcher(config, run_dir)`` builds data and program, optionally
``load_state_dict(checkpoint)``, then ``run()`` trains to the end and writes posterior.pt.
Under torchrun every rank runs one Searcher on its shard of each global batch (see
``search/parallel.py``); rank 0 alone writes the run directory and shows progress.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyro
import torch
import torch.nn.functional as F

from bayesnas import rundir
from bayesnas.config import SearchConfig
from bayesnas.data import search_data
from bayesnas.distributed import Dist, from_env, rank_seed, syncbn
from bayesnas.errors import UserError
from bayesnas.loop import Batch, LoopState, StepLoop
from bayesnas.priors import arch_prior_logits
from bayesnas.program import Program, build_program
from bayesnas.search import held_out, metrics, parallel, schedule, state
from bayesnas.search.capture import StepCapture
from bayesnas.search.setup import SearchSetup
from bayesnas.search.steplog import StepLog


class Searcher(StepLoop):
    """Runs one search in ``run_dir`` (which must already hold config.json); ``placement`` is
    the (Dist, device) that ``run_search`` resolved (None: resolved here, from the environment)."""

    def __init__(
        self,
        config: SearchConfig,
        run_dir: Path,
        progress: bool = True,
        placement: tuple[Dist, torch.device] | None = None,
    ):
        dist, device = from_env(config.device) if placement is None else placement
        self.config, self.device = config, device  # one process, or a rank of torchrun
        self.show_progress = progress and dist.main
        pyro.set_rng_seed(config.seed)
        self.data = search_data(config, device)
        self.train_data, self.val_data, self.info, self.held_out = self.data
        steps_per_epoch = self.train_data.steps_per_epoch(config.batch_size)
        loop = LoopState(metrics.zero_sums(device))
        super().__init__(
            run_dir, loop, steps_per_epoch, config.epochs, config.checkpoint_minutes, dist
        )
        kl_n = config.kl_n or 10 * len(self.train_data)
        # the zero-cost prior: the same on every rank (its own seeded random state)
        self.arch_prior_logits = arch_prior_logits(
            config, self.train_data, self.info, device, self.show_progress
        )
        self.program: Program = build_program(
            config,
            self.info.num_classes,
            self.info.channels,
            kl_n,
            self.info.image_size,
            self.arch_prior_logits,
        )
        self._parallelise()
        self.program.elbo.to(device)
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.program.net.to(memory_format=torch.channels_last)
        gate_logits = self.program.guide.gate_logits
        self.capture = StepCapture(
            config.capture, self.program.net, gate_logits, self.device, self._note
        )
        weights = [p for p in self.program.model.parameters() if p.requires_grad]
        optimizer = _optimizer(config, self.program, weights)
        self.setup = SearchSetup(
            config, dist, device, self.program, optimizer, weights, kl_n, steps_per_epoch
        )
        self.steps = StepLog(self.setup, self.run_dir)
        self._tau = 0.0  # the last step's temperature, for the bar
        dist.broadcast_tensors(list(self.program.elbo.state_dict().values()))
        if dist.active:  # distinct gate noise and augmentation per rank, fixed by the seed
            pyro.set_rng_seed(rank_seed(config.seed, dist.rank))

    def _parallelise(self) -> None:
        """Under torchrun: equal shards, ops chosen from global counts, BatchNorm optionally
        over the global batch (--sync-bn). One process: nothing changes."""
        if not self.dist.active:
            return
        if self.config.batch_size % self.dist.world:
            raise UserError(
                f"--batch-size {self.config.batch_size} (the global batch) does not split evenly "
                f"over {self.dist.world} processes: use a multiple of {self.dist.world}"
            )
        net = self.program.net
        net.share_plan(self.dist.sum_)  # a space that plans from the batch plans globally
        if self.config.sync_bn:
            syncbn.convert(net)

    # -- the setup's parts, as the Searcher's own --------------------------------------------

    @property
    def optimizer(self) -> torch.optim.SGD:
        return self.setup.optimizer

    @property
    def weights(self) -> list[torch.nn.Parameter]:
        return self.setup.weights

    @property
    def kl_n(self) -> int:
        return self.setup.kl_n

    @property
    def warmup_steps(self) -> int:
        """Steps in which q stays frozen while the weights train on draws from it."""
        return self.setup.warmup_steps

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain data (this rank's view)."""
        own = state.local_state(self.program.net, self.device)
        return state.checkpoint(self.setup, self.loop, [own])

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from a checkpoint: its program, optimizer, position and random state."""
        self.loop = state.restore(self.setup, saved)

    def _save_checkpoint(self) -> None:
        """Every rank hands rank 0 its own state; rank 0 writes checkpoint.pt atomically."""
        ranks = self.dist.gather(state.local_state(self.program.net, self.device))
        if self.dist.main:
            self.steps.flush()
            saved = state.checkpoint(self.setup, self.loop, ranks)
            rundir.save_torch(self.run_dir / rundir.CHECKPOINT, saved)
        self._checkpointed()

    # -- training ---------------------------------------------------------------------------

    def _schedule(self, step: int) -> float:
        """Learning rates, draw kind and temperature of global ``step``; returns tau."""
        return schedule.apply_schedule(
            self.config, self.program, self.optimizer, step, self.total_steps
        )

    def _prune(self) -> None:
        """Prune the ops q gave up at the end of the current epoch (``schedule.prune``)."""
        end = (self.epoch + 1) * self.steps_per_epoch
        schedule.prune(self.config, self.program, self.optimizer, end, self.total_steps)

    def _step(self, images: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        """One SVI step on a batch (this rank's shard): Eq. 15, backward, gradients averaged
        over ranks, SGD (gates frozen during the warm-up)."""
        autocast = torch.autocast(self.device.type, torch.bfloat16, enabled=self.cuda)
        with autocast, self.capture.step():
            loss = self.program.loss(images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        assert self.program.model.last_logits is not None
        logits = self.program.model.last_logits.float()
        nll = F.cross_entropy(logits, labels, reduction="sum")
        correct = (logits.argmax(1) == labels).sum()
        if self.dist.active:
            stats = torch.stack((loss.detach(), nll, correct.float(), nll.new_tensor(len(labels))))
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            stats = parallel.average_gradients(self.dist, params, stats)
            loss, nll, correct = stats[0] / self.dist.world, stats[1], stats[2]
            labels_seen = stats[3]
        if step < self.warmup_steps or self.held_out is not None:
            self.program.guide.gate_logits.grad = None
        self.optimizer.step()
        if self.held_out is not None and step >= self.warmup_steps:
            held_out.gate_step(self.setup, self.held_out, step - self.warmup_steps)
        s = self.sums
        s["loss"] += loss.detach()
        s["nll"] += nll
        s["correct"] += correct
        s["images"] += labels_seen if self.dist.active else labels.numel()
        s["steps"] += 1

    def _note(self, message: str) -> None:
        """One line for the user (rank 0 only: under torchrun every rank would say it)."""
        if self.dist.main:
            rundir.note(message)

    def run(self) -> Path | None:
        """Train from the current state to the last epoch; returns the path of posterior.pt
        (None on ranks other than 0, which write nothing)."""
        with self._running(self.show_progress) as bar, self.dist.guard():
            if self.dist.main:
                self.steps.start(self.global_step)
            self._run_epochs(bar)
            return self._finish()

    def _epoch_batches(self) -> Iterable[Batch]:
        """This rank's shard of the epoch's batches, q's support refreshed (pruning may have
        shrunk it)."""
        c = self.config
        self.capture.refresh()
        shard = (self.dist.rank, self.dist.world)
        return self.train_data.train_batches(
            c.batch_size, self.epoch, c.seed, self.step_in_epoch, shard
        )

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """The schedules of the global step, the SVI step, and its row of the step log."""
        step = self.global_step
        self._tau = self._schedule(step)
        if self.dist.main:
            self.steps.before(step, self.sums)
        self._step(images, labels, step)
        if self.dist.main:
            self.steps.after(step, self._tau, self.sums)

    def _postfix(self, seconds: float, images_before: float) -> str:
        """Epoch, mean loss, training accuracy, the last step's tau, images per second."""
        s = {k: float(v) for k, v in self.sums.items()}
        return (
            f"epoch {self.epoch + 1}/{self.config.epochs} loss {s['loss'] / s['steps']:.3f} "
            f"acc {s['correct'] / s['images']:.1%} tau {self._tau:.2f} "
            f"{(s['images'] - images_before) / max(seconds, 1e-9):.0f} img/s"
        )

    def _check_finite(self) -> None:
        """Stop before a diverged state is checkpointed (``metrics.check_finite``)."""
        metrics.check_finite(self.sums, self.epoch)

    def _end_epoch(self, started: float, counted: float, images_before: float) -> None:
        """Epoch end: check, prune, share BatchNorm statistics, log the row, checkpoint."""
        self._check_finite()
        self._prune()
        if not self.config.sync_bn:
            parallel.average_batchnorm(self.dist, self.program.net)
        parallel.check_one_q(self.dist, self.program.guide.gate_logits)
        now = time.monotonic()
        loop = self.loop
        loop.elapsed += now - counted
        images = float(loop.sums["images"]) - images_before
        row = None
        if self.dist.main:
            row = metrics.epoch_metrics(self.setup, loop, self.val_data, now - started, images)
        loop.epoch, loop.step_in_epoch = loop.epoch + 1, 0
        loop.sums = metrics.zero_sums(self.device)
        if row is not None:
            rundir.truncate_metrics(self.run_dir, loop.epoch - 1)
            rundir.append_metrics(self.run_dir, row)
        self._save_checkpoint()

    def _finish(self) -> Path | None:
        """Rank 0 scores the posterior mode on the whole validation split, writes posterior.pt."""
        if not self.dist.main:
            return None
        gates, val = metrics.score_mode(self.program, self.val_data, None, self.cuda)
        mode = None if gates["mode"] is None else self.program.net.describe(self.program.mode())
        path = self.run_dir / rundir.POSTERIOR
        payload = state.posterior(
            self.setup, self.loop, self.data, self.arch_prior_logits, mode, val, gates
        )
        rundir.save_torch(path, payload)
        return path


def _optimizer(
    config: SearchConfig, program: Program, weights: list[torch.nn.Parameter]
) -> torch.optim.SGD:
    """SGD with Nesterov momentum over the weights and (the posterior sampler) q's gate logits;
    each group keeps its base learning rate for the schedules."""
    c = config
    groups = [{"params": weights, "lr": c.lr, "base_lr": c.lr}]
    if c.sampler == "posterior":
        gate = program.guide.gate_logits
        groups.append({"params": [gate], "lr": c.gate_lr, "base_lr": c.gate_lr})
    return torch.optim.SGD(groups, lr=c.lr, momentum=0.9, nesterov=True)
