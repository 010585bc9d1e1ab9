"""The SVI search: train the super-network's posterior, log each epoch, checkpoint, resume.

Lifecycle (NNI-style): ``Searcher(config, run_dir)`` builds data and program, optionally
``load_state_dict(checkpoint)``, then ``run()`` trains to the end and writes posterior.pt.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from tqdm import tqdm

from bayesnas import rundir
from bayesnas.config import SearchConfig
from bayesnas.data import first_images, resolve_data_root, search_data
from bayesnas.device import resolve_device, rng_state, set_rng_state
from bayesnas.errors import Interrupted, UserError
from bayesnas.program import Program, build_program
from bayesnas.progress import step_bar
from bayesnas.spaces.scoring import evaluate_architecture
from bayesnas.steplog import StepLog

PRUNED_LOGIT = -1e4  # softmax gives such an op exactly 0 in float32 and bf16


def _without_device(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "device"}


def cosine(base: float, step: int, total: int) -> float:
    """Cosine decay from ``base`` to 0 over ``total`` steps (per step, as SGDR without restarts)."""
    return 0.5 * base * (1 + math.cos(math.pi * min(step, total) / total))


class Searcher:
    """Runs one search in ``run_dir`` (which must already hold config.json)."""

    def __init__(self, config: SearchConfig, run_dir: Path, progress: bool = True):
        self.config, self.run_dir, self.show_progress = config, Path(run_dir), progress
        self.device = resolve_device(config.device)
        pyro.set_rng_seed(config.seed)
        self.train_data, self.val_data, self.info = search_data(config, self.device)
        self.kl_n = config.kl_n or 10 * len(self.train_data)
        self.program: Program = build_program(
            config, self.info.num_classes, self.info.channels, self.kl_n
        )
        self.program.elbo.to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.program.net.to(memory_format=torch.channels_last)
        self.weights = [p for p in self.program.model.parameters() if p.requires_grad]
        groups = [{"params": self.weights, "lr": config.lr, "base_lr": config.lr}]
        if config.sampler == "posterior":
            gate = self.program.guide.gate_logits
            groups.append({"params": [gate], "lr": config.gate_lr, "base_lr": config.gate_lr})
        self.optimizer = torch.optim.SGD(groups, lr=config.lr, momentum=0.9, nesterov=True)
        self.steps_per_epoch = self.train_data.steps_per_epoch(config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.epoch = self.step_in_epoch = 0
        self.elapsed = 0.0
        self.sums = self._zero_sums()
        self._stop_requested = False
        self._signal = signal.SIGINT
        self.steps = StepLog(self)

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain data."""
        return {
            "format": rundir.FORMAT_VERSION,
            "kind": "checkpoint",
            "config": self.config.to_json(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "model": self.program.model.state_dict(),
            "guide": self.program.guide.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "sums": {k: float(v) for k, v in self.sums.items()},
            "elapsed": self.elapsed,
            "threads": torch.get_num_threads(),  # CPU results depend on it: a resume restores it
            "versions": rundir.versions(self.device),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if _without_device(state.get("config", {})) != _without_device(self.config.to_json()):
            raise UserError("checkpoint.pt was written for another configuration than config.json")
        try:
            self.program.model.load_state_dict(state["model"])
            self.program.guide.load_state_dict(state["guide"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint.pt does not fit this network: {str(exc)[:200]}") from None
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.sums = {k: torch.tensor(v, device=self.device) for k, v in state["sums"].items()}
        self.elapsed = state["elapsed"]
        set_rng_state(state["rng"])
        restore_threads(state.get("threads"))

    def _save_checkpoint(self) -> None:
        self.steps.flush()
        rundir.save_torch(self.run_dir / rundir.CHECKPOINT, self.state_dict())
        self._last_checkpoint = time.monotonic()

    # -- training ---------------------------------------------------------------------------

    def _zero_sums(self) -> dict[str, torch.Tensor]:
        names = ("loss", "nll", "correct", "images", "steps")
        return {k: torch.zeros((), device=getattr(self, "device", "cpu")) for k in names}

    @property
    def learns_q(self) -> bool:
        return self.config.sampler == "posterior"

    @property
    def warmup_steps(self) -> int:
        """Steps in which q stays frozen while the weights train on exact draws from it."""
        return math.ceil(self.config.warmup * self.total_steps)

    def _schedule(self, step: int) -> float:
        """Set the learning rates, the draw kind and the temperature for global ``step``.

        During the warm-up q is frozen, so the weights train on exact draws from it (one per
        example, or with ``warmup_draws="batch"`` one path per batch as in single-path one-shot
        NAS, which costs one sub-network's step): unbiased for Eq. 15's weight gradient either
        way. Afterwards the gates are relaxed (Concrete) so that
        q gets gradients, and the gate learning rate and tau follow their schedules over the
        remaining steps. Returns tau.
        """
        c, guide = self.config, self.program.guide
        weights, *gates = self.optimizer.param_groups
        weights["lr"] = cosine(weights["base_lr"], step, self.total_steps)
        learning = step - self.warmup_steps
        remaining = max(1, self.total_steps - self.warmup_steps)
        for group in gates:
            group["lr"] = cosine(group["base_lr"], learning, remaining) if learning >= 0 else 0.0
        if self.learns_q:
            guide.relaxed = learning >= 0
            guide.shared_exact = learning < 0 and c.warmup_draws == "batch"
        tau = c.tau + (c.tau_final - c.tau) * max(0, learning) / max(1, remaining - 1)
        guide.temperature = tau
        if hasattr(self.program.net, "aux_skip"):
            progress = min(1.0, max(0, learning) / max(1, remaining - 1))
            self.program.net.aux_skip = c.aux_skip * (1 - progress) if learning >= 0 else 0.0
        return tau

    def _step(self, images: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        """One SVI step on a batch: Eq. 15, backward, SGD (gates frozen during warm-up)."""
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.cuda):
            loss = self.program.loss(images, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step < self.warmup_steps:
            self.program.guide.gate_logits.grad = None
        self.optimizer.step()
        logits = self.program.model.last_logits.float()
        s = self.sums
        s["loss"] += loss.detach()
        s["nll"] += F.cross_entropy(logits, labels, reduction="sum")
        s["correct"] += (logits.argmax(1) == labels).sum()
        s["images"] += labels.numel()
        s["steps"] += 1

    def _handle_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl-C and SIGTERM (SLURM, docker stop, timeout): checkpoint after this step."""
        if self._stop_requested:  # a second signal stops at once
            raise Interrupted(None, signum)
        self._stop_requested, self._signal = True, signum

    def run(self) -> Path:
        """Train from the current state to the last epoch; returns the path of posterior.pt."""
        previous = {
            sig: signal.signal(sig, self._handle_sigint) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        self._last_checkpoint = time.monotonic()
        self.steps.start(self.epoch * self.steps_per_epoch + self.step_in_epoch)
        bar = step_bar(
            self.total_steps,
            self.epoch * self.steps_per_epoch + self.step_in_epoch,
            self.show_progress,
        )
        try:
            while self.epoch < self.config.epochs:
                self._run_epoch(bar)
        finally:
            bar.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._finish()

    def _run_epoch(self, bar: tqdm) -> None:
        c = self.config
        started = counted = time.monotonic()  # epoch start; time already added to elapsed
        images_before = float(self.sums["images"])
        batches = self.train_data.train_batches(
            c.batch_size, self.epoch, c.seed, self.step_in_epoch
        )
        last_shown = 0.0
        for images, labels in batches:
            step = self.epoch * self.steps_per_epoch + self.step_in_epoch
            tau = self._schedule(step)
            self.steps.before(step)
            self._step(images, labels, step)
            self.steps.after(step, tau)
            self.step_in_epoch += 1
            bar.update(1)
            now = time.monotonic()
            if now - last_shown > 1.0 and bar.disable is False:
                last_shown = now
                s = {k: float(v) for k, v in self.sums.items()}
                bar.set_postfix_str(
                    f"epoch {self.epoch + 1}/{c.epochs} loss {s['loss'] / s['steps']:.3f} "
                    f"acc {s['correct'] / s['images']:.1%} tau {tau:.2f} "
                    f"{(s['images'] - images_before) / (now - started):.0f} img/s",
                    refresh=False,
                )
            if self._stop_requested or now - self._last_checkpoint > 60 * c.checkpoint_minutes:
                self._check_finite()
                self.elapsed, counted = self.elapsed + now - counted, now
                self._save_checkpoint()
                if self._stop_requested:
                    raise Interrupted(self.run_dir, self._signal)
        self._check_finite()
        self._prune()
        now = time.monotonic()
        self.elapsed += now - counted
        row = self._epoch_metrics(now - started, float(self.sums["images"]) - images_before)
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.sums = self._zero_sums()
        rundir.truncate_metrics(self.run_dir, self.epoch - 1)
        rundir.append_metrics(self.run_dir, row)
        self._save_checkpoint()

    def _prune(self) -> None:
        """Progressive pruning: after the warm-up, an op whose probability under q fell below
        ``prune_below`` at an epoch's end gets probability 0 from then on, so that it is never
        computed again (DrNAS prunes progressively too). Its logit is pinned at PRUNED_LOGIT,
        where softmax underflows to exactly 0, and its momentum is cleared: its gradient is then
        exactly 0, so it stays there and a resume restores it from the checkpoint."""
        c, logits = self.config, self.program.guide.gate_logits
        if (
            c.prune_below <= 0
            or c.sampler != "posterior"
            or self.program.net.layout.kind != ("categorical")
        ):
            return
        if (self.epoch + 1) * self.steps_per_epoch <= self.warmup_steps:
            return
        with torch.no_grad():
            prune = torch.softmax(logits, -1) < c.prune_below
            logits[prune] = PRUNED_LOGIT
            momentum = self.optimizer.state.get(logits, {}).get("momentum_buffer")
            if momentum is not None:
                momentum[prune] = 0.0

    def _check_finite(self) -> None:
        """Stop before a diverged state is checkpointed (the loss stays on the device otherwise)."""
        loss = float(self.sums["loss"])
        if not math.isfinite(loss):
            raise UserError(
                f"the loss became {loss} in epoch {self.epoch + 1} and the search stopped without "
                "saving that state: start a new run with a lower --lr or --gate-lr"
            )

    def _epoch_metrics(self, seconds: float, images: float) -> dict[str, Any]:
        """The metrics.jsonl row of the epoch just trained."""
        s, p = self.sums, self.program
        steps, seen = max(1.0, float(s["steps"])), max(1.0, float(s["images"]))
        loss, nll = float(s["loss"]) / steps, float(s["nll"]) / seen
        kl = float(p.kl().detach()) / self.kl_n
        gates = p.net.gate_statistics(p.guide.gate_logits)
        if has_mode(p.guide.gate_logits):
            batches = first_images(self.val_data.eval_batches(256), self.config.eval_size)
            val = evaluate_architecture(p.net, p.mode(), batches, autocast=self.cuda)
        else:  # tied logits (a gate warm-up): the argmax would be the first op, chosen by nobody
            val = {"accuracy": None, "nll": None, "images": None}
            gates["mode"] = None
        return {
            "epoch": self.epoch + 1,
            "step": (self.epoch + 1) * self.steps_per_epoch,
            "elbo": -loss,
            "nll": nll,
            "kl": kl,
            "weight_prior": loss - nll - kl,
            "train_acc": float(s["correct"]) / seen,
            "val_acc": val["accuracy"],
            "val_nll": val["nll"],
            "val_images": val["images"],
            "lr": self.optimizer.param_groups[0]["lr"],
            "gate_lr": self.optimizer.param_groups[-1]["lr"] if self.learns_q else 0.0,
            "q_learns": self.learns_q
            and (self.epoch + 1) * self.steps_per_epoch > self.warmup_steps,
            "tau": p.guide.temperature,
            "gates": gates,
            "images_per_s": images / max(seconds, 1e-9),
            "seconds": seconds,
        } | ({} if gates["mode"] else {"mode": NO_MODE})

    def _finish(self) -> Path:
        """Score the posterior mode on the whole validation split and write posterior.pt."""
        p = self.program
        mode, gates = p.mode(), p.net.gate_statistics(p.guide.gate_logits)
        if has_mode(p.guide.gate_logits):
            val = evaluate_architecture(
                p.net, mode, self.val_data.eval_batches(256), autocast=self.cuda
            )
        else:  # q is flat on some edge or gate (a uniform run): it has no mode to score
            val, gates["mode"] = {"accuracy": None, "nll": None}, None
        payload = {
            "format": rundir.FORMAT_VERSION,
            "kind": "posterior",
            "config": self.config.to_json(),
            "space": p.net.space_name,
            "space_config": p.net.config,
            "kl_n": self.kl_n,
            "dataset": {
                "name": self.info.name,
                "num_classes": self.info.num_classes,
                "channels": self.info.channels,
                "train_images": len(self.train_data),
                "val_images": len(self.val_data),
                "image_size": self.info.image_size,
                "mean": list(self.info.mean),
                "std": list(self.info.std),
            },
            "net": p.net.state_dict(),
            "gate_logits": p.guide.gate_logits.detach().cpu(),
            "mode": None if gates["mode"] is None else p.net.describe(mode),
            "mode_val_acc": val["accuracy"],
            "mode_val_nll": val["nll"],
            "gates": gates,
            "seconds": self.elapsed,
            "versions": rundir.versions(self.device),
        }
        path = self.run_dir / rundir.POSTERIOR
        rundir.save_torch(path, payload)
        return path


NO_MODE = "no mode yet: q's gate logits are tied, so no architecture was scored"


def has_mode(gate_logits: torch.Tensor) -> bool:
    """Whether q has a unique mode: no edge with tied top op logits (cell spaces), no keep
    gate at exactly 1/2 (channel gates). A gate warm-up or a uniform run has none."""
    logits = gate_logits.detach()
    if logits.dim() >= 2 and logits.shape[-1] > 1:
        top = logits.topk(2, dim=-1).values
        return bool((top[..., 0] > top[..., 1]).all())
    return bool((logits != 0).all())


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


def _resumed(run_dir: Path, progress: bool, device: str | None) -> Searcher:
    """A Searcher restored from a run's config.json and its latest checkpoint."""
    try:
        saved = json.loads((run_dir / rundir.CONFIG).read_text())
        config = SearchConfig.from_json(saved["config"]).with_updates(device=device)
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{run_dir / rundir.CONFIG} is corrupt; cannot resume") from None
    if (run_dir / rundir.POSTERIOR).is_file():
        raise UserError(f"{run_dir} is finished (posterior.pt exists); nothing to resume")
    searcher = Searcher(config, run_dir, progress)
    if (run_dir / rundir.CHECKPOINT).is_file():
        searcher.load_state_dict(rundir.load_torch(run_dir / rundir.CHECKPOINT, "checkpoint"))
    return searcher


def run_search(
    config: SearchConfig | None,
    run_dir: Path,
    *,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    device: str | None = None,
    announce: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Start (or resume) a search in ``run_dir``; returns a summary of its posterior."""
    if resume and force:
        raise UserError(
            "--force and --resume contradict each other: --resume continues a run, "
            "--force starts it over; pass one"
        )
    if resume and not (run_dir / rundir.CONFIG).is_file():
        raise UserError(f"{run_dir} is not a bayesnas run (no {rundir.CONFIG}); nothing to resume")
    if not resume:
        # record the data root a search reads (also when found, not given), so that a resume
        # and `sample` read the same files
        root = resolve_data_root(config.dataset, config.data_root)
        config = config.with_updates(data_root=str(root.resolve()))
        searcher = Searcher(config, run_dir, progress)  # loads the data before any file is written
        rundir.create(run_dir)
    with rundir.locked(run_dir):
        if resume:
            searcher = _resumed(run_dir, progress, device)
        else:
            rundir.check_fresh(run_dir, force)
            rundir.write_json(
                run_dir / rundir.CONFIG,
                {
                    "config": config.to_json(),
                    "kl_n": searcher.kl_n,
                    "versions": rundir.versions(searcher.device),
                },
            )
        if announce is not None:
            announce(run_dir)
        try:
            payload = rundir.load_torch(searcher.run(), "posterior")
        except rundir.DiskFull as exc:
            raise rundir.disk_full(
                exc.path,
                exc.needed,
                then=f"free some space, then resume with `bayesnas search --resume {run_dir}` "
                "(the last checkpoint is intact)",
            ) from None
    summary = {k: payload[k] for k in ("mode", "mode_val_acc", "seconds", "dataset")}
    sampler = payload["config"].get("sampler", "posterior")
    return summary | {"path": run_dir / rundir.POSTERIOR, "sampler": sampler}
