"""The SVI loop: train the super-network's posterior, log each epoch, checkpoint, resume.

Lifecycle (NNI-style): ``Searcher(config, run_dir)`` builds data and program, optionally
``load_state_dict(checkpoint)``, then ``run()`` trains to the end and writes posterior.pt.
Under torchrun every rank runs one Searcher on its shard of each global batch (see
``search/parallel.py``); rank 0 alone writes the run directory and shows progress.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bayesnas import rundir
from bayesnas.config import SearchConfig
from bayesnas.data import search_data
from bayesnas.distributed import from_env, rank_seed, syncbn
from bayesnas.errors import Interrupted, UserError
from bayesnas.priors import arch_prior_logits
from bayesnas.program import Program, build_program
from bayesnas.progress import step_bar
from bayesnas.search import held_out, metrics, parallel, schedule, state
from bayesnas.search.capture import StepCapture
from bayesnas.steplog import StepLog


class Searcher:
    """Runs one search in ``run_dir`` (which must already hold config.json)."""

    def __init__(self, config: SearchConfig, run_dir: Path, progress: bool = True):
        self.config, self.run_dir = config, Path(run_dir)
        self.dist, self.device = from_env(config.device)  # one process, or a rank of torchrun
        self.show_progress = progress and self.dist.main
        pyro.set_rng_seed(config.seed)
        self.train_data, self.val_data, self.info, self.held_out = search_data(config, self.device)
        self.kl_n = config.kl_n or 10 * len(self.train_data)
        # the zero-cost prior: the same on every rank (its own seeded random state)
        self.arch_prior_logits = arch_prior_logits(
            config, self.train_data, self.info, self.device, self.show_progress
        )
        self.program: Program = build_program(
            config,
            self.info.num_classes,
            self.info.channels,
            self.kl_n,
            self.info.image_size,
            self.arch_prior_logits,
        )
        self._parallelise()
        self.program.elbo.to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.program.net.to(memory_format=torch.channels_last)
        gate_logits = self.program.guide.gate_logits
        self.capture = StepCapture(
            config.capture, self.program.net, gate_logits, self.device, self._note
        )
        self.weights = [p for p in self.program.model.parameters() if p.requires_grad]
        self.optimizer = self._optimizer()
        self.steps_per_epoch = self.train_data.steps_per_epoch(config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.epoch = self.step_in_epoch = 0
        self.elapsed = 0.0
        self.sums = metrics.zero_sums(self.device)
        self._stop_requested = False
        self._signal: int = signal.SIGINT
        self._last_checkpoint, self._last_shown = time.monotonic(), 0.0
        self.steps = StepLog(self)
        self.dist.broadcast_tensors(list(self.program.elbo.state_dict().values()))
        if self.dist.active:  # distinct gate noise and augmentation per rank, fixed by the seed
            pyro.set_rng_seed(rank_seed(config.seed, self.dist.rank))

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

    def _optimizer(self) -> torch.optim.SGD:
        c = self.config
        groups = [{"params": self.weights, "lr": c.lr, "base_lr": c.lr}]
        if c.sampler == "posterior":
            gate = self.program.guide.gate_logits
            groups.append({"params": [gate], "lr": c.gate_lr, "base_lr": c.gate_lr})
        return torch.optim.SGD(groups, lr=c.lr, momentum=0.9, nesterov=True)

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain data (this rank's view)."""
        return state.checkpoint(self, [state.local_state(self)])

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        state.restore(self, saved)

    def _save_checkpoint(self) -> None:
        """Every rank hands rank 0 its own state; rank 0 writes checkpoint.pt atomically."""
        ranks = self.dist.gather(state.local_state(self))
        if self.dist.main:
            self.steps.flush()
            rundir.save_torch(self.run_dir / rundir.CHECKPOINT, state.checkpoint(self, ranks))
        self._last_checkpoint = time.monotonic()

    # -- training ---------------------------------------------------------------------------

    @property
    def learns_q(self) -> bool:
        return self.config.sampler == "posterior"

    @property
    def warmup_steps(self) -> int:
        """Steps in which q stays frozen while the weights train on draws from it."""
        return schedule.warmup_steps(self.config, self.total_steps)

    @property
    def global_step(self) -> int:
        return self.epoch * self.steps_per_epoch + self.step_in_epoch

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
            held_out.gate_step(self, self.held_out, step - self.warmup_steps)
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

    def _handle_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl-C and SIGTERM (SLURM, docker stop, timeout): checkpoint after this step."""
        if self._stop_requested:  # a second signal stops at once
            raise Interrupted(None, signum)
        self._stop_requested, self._signal = True, signum

    def run(self) -> Path | None:
        """Train from the current state to the last epoch; returns the path of posterior.pt
        (None on ranks other than 0, which write nothing)."""
        previous = {
            sig: signal.signal(sig, self._handle_sigint) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        self._last_checkpoint = time.monotonic()
        if self.dist.main:
            self.steps.start(self.global_step)
        bar = step_bar(self.total_steps, self.global_step, self.show_progress)
        try:
            with self.dist.guard():
                while self.epoch < self.config.epochs:
                    self._run_epoch(bar)
                return self._finish()
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_epoch(self, bar: tqdm) -> None:
        c = self.config
        started = counted = time.monotonic()  # epoch start; time already added to elapsed
        images_before = float(self.sums["images"])
        shard = (self.dist.rank, self.dist.world)
        self.capture.refresh()  # pruning may have shrunk q's support
        batches = self.train_data.train_batches(
            c.batch_size, self.epoch, c.seed, self.step_in_epoch, shard
        )
        for images, labels in batches:
            step = self.global_step
            tau = self._schedule(step)
            if self.dist.main:
                self.steps.before(step)
            self._step(images, labels, step)
            if self.dist.main:
                self.steps.after(step, tau)
            self.step_in_epoch += 1
            bar.update(1)
            now = time.monotonic()
            self._show(bar, now - started, images_before, tau)
            stop, due = self._agree(now)
            if stop or due:
                metrics.check_finite(self.sums, self.epoch)
                self.elapsed, counted = self.elapsed + now - counted, now
                self._save_checkpoint()
                if stop:
                    raise Interrupted(self.run_dir, self._signal)
        self._end_epoch(started, counted, images_before)

    def _agree(self, now: float) -> tuple[bool, bool]:
        """Whether to stop (a signal on any rank) and whether a checkpoint is due (rank 0's
        clock), decided alike on every rank."""
        due = now - self._last_checkpoint > 60 * self.config.checkpoint_minutes
        stop, due = self.dist.any(self._stop_requested, due and self.dist.main)
        return stop, due

    def _show(self, bar: tqdm, seconds: float, images_before: float, tau: float = 0.0) -> None:
        """The bar's figures, refreshed at most once a second (each costs a device read)."""
        now = time.monotonic()
        if bar.disable or now - self._last_shown <= 1.0:
            return
        self._last_shown = now
        s = {k: float(v) for k, v in self.sums.items()}
        bar.set_postfix_str(
            f"epoch {self.epoch + 1}/{self.config.epochs} loss {s['loss'] / s['steps']:.3f} "
            f"acc {s['correct'] / s['images']:.1%} tau {tau:.2f} "
            f"{(s['images'] - images_before) / max(seconds, 1e-9):.0f} img/s",
            refresh=False,
        )

    def _end_epoch(self, started: float, counted: float, images_before: float) -> None:
        """Epoch end: check, prune, share BatchNorm statistics, log the row, checkpoint."""
        metrics.check_finite(self.sums, self.epoch)
        self._prune()
        if not self.config.sync_bn:
            parallel.average_batchnorm(self.dist, self.program.net)
        parallel.check_one_q(self.dist, self.program.guide.gate_logits)
        now = time.monotonic()
        self.elapsed += now - counted
        images = float(self.sums["images"]) - images_before
        row = metrics.epoch_metrics(self, now - started, images) if self.dist.main else None
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.sums = metrics.zero_sums(self.device)
        if row is not None:
            rundir.truncate_metrics(self.run_dir, self.epoch - 1)
            rundir.append_metrics(self.run_dir, row)
        self._save_checkpoint()

    def _finish(self) -> Path | None:
        """Rank 0 scores the posterior mode on the whole validation split, writes posterior.pt."""
        if not self.dist.main:
            return None
        gates, val = metrics.score_mode(self, None)
        mode = None if gates["mode"] is None else self.program.net.describe(self.program.mode())
        path = self.run_dir / rundir.POSTERIOR
        rundir.save_torch(path, state.posterior(self, mode, val, gates))
        return path
