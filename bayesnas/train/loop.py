"""The training loop of ``bayesnas train``: SGD over one network, checkpoints, exact resume.

Plain supervised SGD (Nesterov momentum 0.9, lr cosine per step to 0, weight decay, the data
set's augmentation), with DARTS's extras where the config asks: an auxiliary-head loss,
drop-path rising linearly over the epochs, gradient clipping. It follows a search's run-directory
rules: metrics.jsonl, an atomic checkpoint.pt at every epoch end and on Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyro
import torch
import torch.nn.functional as F
from torch import nn

from bayesnas import rundir
from bayesnas.device import resolve_device, rng_state, set_rng_state
from bayesnas.errors import UserError
from bayesnas.export import write_trained
from bayesnas.loop import Batch, LoopState, StepLoop
from bayesnas.spaces.subnet import drop_training_parts, set_drop_path
from bayesnas.train.config import TrainConfig
from bayesnas.train.parts import build_model, cosine, evaluate, outputs, training_data

RESULT = "result.json"
CHECKPOINT_MINUTES = 10.0  # also checkpoint mid-epoch this often (epochs of big nets are long)


class Trainer(StepLoop):
    """Trains one network in ``run_dir`` (which must already hold config.json, before run())."""

    def __init__(
        self, config: TrainConfig, run_dir: Path, progress: bool = True, inherit: bool = True
    ):
        self.config, self.show_progress = config, progress
        self.device = resolve_device(config.device)
        self.cuda = self.device.type == "cuda"
        self.train_data, self.test_data, self.info = training_data(config, self.device)
        pyro.set_rng_seed(config.seed)
        self.model = build_model(config, inherit).to(self.device)
        if self.cuda:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=config.lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=config.weight_decay,
        )
        steps_per_epoch = self.train_data.steps_per_epoch(config.batch_size)
        loop = LoopState(self._zero_sums())
        super().__init__(run_dir, loop, steps_per_epoch, config.epochs, CHECKPOINT_MINUTES)

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, as plain data."""
        return {
            "format": rundir.FORMAT_VERSION,
            "kind": "checkpoint",
            "config": self.config.to_json(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "step": self.global_step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(),
            "sums": {k: float(v) for k, v in self.sums.items()},
            "elapsed": self.loop.elapsed,
            "versions": rundir.versions(self.device),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint: its network, optimizer, position and random state."""
        if without_device(state.get("config", {})) != without_device(self.config.to_json()):
            raise UserError("checkpoint.pt was written for another configuration than config.json")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint.pt does not fit this network: {str(exc)[:200]}") from None
        self.loop = LoopState.restored(state, self.device)
        set_rng_state(state["rng"])

    def _save_checkpoint(self) -> None:
        """Write checkpoint.pt atomically."""
        rundir.save_torch(self.run_dir / rundir.CHECKPOINT, self.state_dict())
        self._checkpointed()

    def _zero_sums(self) -> dict[str, torch.Tensor]:
        return {k: torch.zeros((), device=self.device) for k in ("loss", "correct", "images")}

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One SGD step on a batch at the learning rate of the global step."""
        step = self.global_step
        for group in self.optimizer.param_groups:
            group["lr"] = cosine(self.config.lr, step, self.total_steps)
        c = self.config
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.cuda):
            logits, aux = outputs(self.model, images)
        logits = logits.float()
        loss = F.cross_entropy(logits, labels)
        total = loss
        if aux is not None and c.auxiliary_weight > 0:  # DARTS's auxiliary head
            total = loss + c.auxiliary_weight * F.cross_entropy(aux.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if c.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.sums["loss"] += loss.detach() * labels.numel()
        self.sums["correct"] += (logits.argmax(1) == labels).sum()
        self.sums["images"] += labels.numel()

    def _stop_at_once(self, signum: int) -> BaseException:
        """A second Ctrl-C stops at once."""
        return KeyboardInterrupt()

    def run(self) -> dict[str, Any]:
        """Train from the current state to the last epoch, test, write the results; result.json."""
        with self._running(self.show_progress) as bar:
            self._run_epochs(bar)
        return self._finish()

    def _epoch_batches(self) -> Iterable[Batch]:
        """The epoch's batches from its next step, the epoch's drop-path rate set."""
        c = self.config
        set_drop_path(self.model, c.drop_path * self.epoch / c.epochs)  # linear from 0
        self._last_shown = 0.0  # each epoch's figures show from its first step
        return self.train_data.train_batches(c.batch_size, self.epoch, c.seed, self.step_in_epoch)

    def _postfix(self, seconds: float, images_before: float) -> str:
        """Epoch, mean loss, training accuracy, images per second."""
        s = {k: float(v) for k, v in self.sums.items()}
        return (
            f"epoch {self.epoch + 1}/{self.config.epochs} loss {s['loss'] / s['images']:.3f} "
            f"acc {s['correct'] / s['images']:.1%} "
            f"{(s['images'] - images_before) / seconds:.0f} img/s"
        )

    def _end_epoch(self, started: float, counted: float, images_before: float) -> None:
        """Epoch end: check, log the row, checkpoint."""
        self._check_finite()
        now = time.monotonic()
        self.loop.elapsed += now - counted
        s = {k: float(v) for k, v in self.sums.items()}
        seen = max(s["images"], 1.0)
        row = {
            "epoch": self.epoch + 1,
            "step": (self.epoch + 1) * self.steps_per_epoch,
            "train_loss": s["loss"] / seen,
            "train_acc": s["correct"] / seen,
            "lr": self.optimizer.param_groups[0]["lr"],
            "images_per_s": (s["images"] - images_before) / max(now - started, 1e-9),
            "seconds": now - started,
        }
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self.sums = self._zero_sums()
        rundir.truncate_metrics(self.run_dir, self.epoch - 1)
        rundir.append_metrics(self.run_dir, row)
        self._save_checkpoint()

    def _check_finite(self) -> None:
        """Stop before a diverged state is checkpointed."""
        loss = float(self.sums["loss"])
        if not math.isfinite(loss):
            raise UserError(
                f"the loss became {loss} in epoch {self.epoch + 1} and training stopped without "
                "saving that state: start a new run with a lower --lr"
            )

    def _finish(self) -> dict[str, Any]:
        """Score the test split once; write weights.safetensors, architecture.json, result.json."""
        c = self.config
        test = evaluate(self.model, self.test_data.eval_batches(256), autocast=self.cuda)
        subnet = c.subnet
        if drop_training_parts(self.model):  # an auxiliary head: training only, not exported
            subnet = {**subnet, "auxiliary": False}
        parameters = sum(p.numel() for p in self.model.parameters())
        dataset = {
            "name": self.info.name,
            "num_classes": self.info.num_classes,
            "channels": self.info.channels,
            "train_images": len(self.train_data),
            "test_images": test["images"],
        }
        write_trained(
            self.run_dir,
            self.model,
            space=c.space,
            space_config=c.space_config,
            architecture=c.architecture,
            subnet=subnet,
            dataset=dataset,
        )
        source = c.source or {}
        result = {
            "architecture": c.architecture,
            "space": c.space,
            "dataset": c.dataset,
            "epochs": c.epochs,
            "test_accuracy": test["accuracy"],
            "test_loss": test["loss"],
            "test_images": test["images"],
            "train_images": len(self.train_data),
            "parameters": parameters,
            "seconds": self.loop.elapsed,
            "mode": c.mode,
            "preset": c.preset,
            "seed": c.seed,
            "source": {"run": source.get("run"), "rank": source.get("rank")},
        }
        rundir.write_json(self.run_dir / RESULT, result)
        return result | {"path": self.run_dir}


def without_device(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "device"}
