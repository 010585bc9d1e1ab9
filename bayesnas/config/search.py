"""The search configuration: one frozen dataclass and validation of user values."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from bayesnas.errors import UserError

MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit
CAPTURE_MODES = ("none", "compile", "cuda-graphs")  # --capture: see bayesnas/search/capture.py
SEARCH_SAMPLERS = ("posterior", "uniform")  # --sampler: q learned by SVI, or kept uniform
FLOAT_FIELDS = (
    "lr", "gate_lr", "warmup", "tau", "tau_final", "init_drop", "prior_l2", "val_fraction",
    "cost_weight", "prior_strength", "likelihood_temperature",
)  # fmt: skip
WARMUP_DRAWS = ("example", "batch", "relaxed")  # --warmup-draws: see search/schedule.py
COSTS = ("flops", "params")
ARCH_PRIORS = ("uniform", "zero-cost")  # --arch-prior: see bayesnas/priors/
GATE_DATA = ("train", "held-out")  # --gate-data: the images q's gradient steps see
PRIOR_PROXIES = ("naswot",)  # training-free proxies of the zero-cost prior (priors/proxies.py)
MAX_PRIOR_STRENGTH = 100.0  # beyond this the prior is a point mass in float32 softmax terms
MAX_TEMPERATURE = 1e6  # what the cost-aware prior charges: MFLOPs or M params
MAX_EPOCHS = 100_000  # --epochs of search and train: beyond any real run (the paper's is 1800)
# upper bounds that no real run reaches: beyond them a value is a typo, and some would run for
# ever (--prior-repeats) or ask for more than a machine has (--workers, a batch)
MAX_RATE = 1e3  # learning rates (the presets use 0.01-1)
MAX_TAU = 1e3  # Concrete temperatures
MAX_PRIOR_L2 = 1e9  # the weight prior's precision (the paper's: 50-150)
MAX_KL_N = 10**12  # N of Eq. 15 (the paper's: 5e5)
MAX_COST_WEIGHT = 1e6
MAX_BATCH = 2**20  # images per step or per proxy evaluation
MAX_PRIOR_REPEATS = 1000
MAX_WORKERS = 256


def check_seed(seed: int) -> None:
    """Seeds outside [0, 2**32 - 1] are one line, not NumPy's traceback."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"--seed must be a whole number in [0, {MAX_SEED}], got {seed}")


def check_space_options(space: Any, options: Any) -> None:
    """``options`` are options of space ``space``, each within that space's bounds (checked
    before any network is built); UserError names the first that is not."""
    from bayesnas.spaces import get_space

    if not isinstance(space, str):
        raise UserError(f"space must be the name of a search space, got {space!r}")
    record = get_space(space)  # raises the UserError that names the known spaces
    if not isinstance(options, dict):
        raise UserError(f"space_options must map option names to numbers, got {options!r}")
    known = {option.name: option for option in record.options}
    for name, value in options.items():
        if name not in known:
            raise UserError(
                f"--{name} does not apply to space {space!r} (it takes {record.option_names})"
            )
        known[name].check(value, space)


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search; saved as config.json and in every checkpoint."""

    dataset: str = "cifar10"
    space: str = "nb201"
    space_options: dict[str, int] = field(default_factory=dict)  # channels/cells, width/blocks
    sampler: str = "posterior"  # posterior: learn q(arch); uniform: single-path, q fixed uniform
    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025  # SGD, Nesterov momentum 0.9, cosine to 0 over all steps (per step)
    gate_lr: float = 0.025  # learning rate of the gate logits (the paper uses one lr for both)
    warmup: float = 0.0  # fraction of steps in which the gates stay frozen while weights train
    tau: float = 1.0  # Concrete temperature at the start ...
    tau_final: float = 1.0  # ... annealed linearly after the warm-up to this by the last step
    prune_below: float = 0.0  # after the warm-up, an op with q below this at an epoch end is cut
    warmup_draws: str = "example"  # warm-up draws: exact per example or per batch, or relaxed
    aux_skip: float = 0.0  # nb201: DARTS-'s auxiliary skip, this weight at q's start, linear to 0
    skip_dropout: float = 0.0  # nb201: P-DARTS's dropout after skip ops, this rate at step 0, to 0
    init_drop: float = 0.1  # initial drop probability p of every Bernoulli group (paper)
    prior_l2: float = 50.0  # l^2, the precision of the Gaussian weight prior (paper's "l2")
    kl_n: int | None = None  # N of Eq. 15; None: 10 x the search-train size (paper: 5e5 on CIFAR)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    data_root: str | None = None
    val_fraction: float = 0.5  # held-out share of the training set (the test set is never used)
    train_size: int | None = None  # cap on search-train images (None: the whole split)
    val_size: int | None = None  # cap on validation images
    eval_size: int | None = 10000  # validation images scored after each epoch (all at the end)
    augmentation: dict[str, Any] | None = None  # pad, flip, cutout; None: the data set's defaults
    workers: int | None = None  # DataLoader workers (ImageNet)
    image_size: int | None = None  # ImageNet training crop (None: 224)
    checkpoint_minutes: float = 10.0  # also checkpoint mid-epoch this often
    sync_bn: bool = False  # under torchrun: BatchNorm statistics of the global batch, not the shard
    capture: str = "none"  # none | compile | cuda-graphs: the step's network calls compiled
    preset: str | None = None
    cost: str | None = None  # cost-aware prior p(arch) ~ exp(-cost_weight * cost): flops | params
    cost_weight: float = 0.0  # lambda per MFLOP or per M params; 0 (default): the paper's prior
    arch_prior: str = "uniform"  # uniform (paper) | zero-cost: removal evidence at init
    prior_strength: float = 1.0  # zero-cost prior logits = strength x per-edge z-scores
    prior_proxy: str = "naswot"  # the training-free proxy of the zero-cost prior
    prior_repeats: int = 8  # initialisations (each with its own batch and edge order)
    prior_batch: int = 128  # images per proxy evaluation
    prior_cells: int | None = None  # cells of the evidence's networks (None: the search's)
    likelihood_temperature: float = 1.0  # q(arch) ~ p(arch) p(D | arch)^(1/T); 1: Eq. 15
    gate_data: str = "train"  # q's steps on the weights' batches (Eq. 15) or on held-out ones

    def with_updates(self, **changes: Any) -> SearchConfig:
        """A copy with ``changes`` applied (None values ignored), validated."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes).validated()

    def validated(self) -> SearchConfig:
        """Self, after checking every value; UserError names the first bad one."""
        for name in FLOAT_FIELDS:
            if not math.isfinite(getattr(self, name)):
                raise UserError(
                    f"--{name.replace('_', '-')} must be a finite number, got {getattr(self, name)}"
                )
        if math.isnan(self.checkpoint_minutes) or self.checkpoint_minutes < 0:
            raise UserError(
                "--checkpoint-minutes must be >= 0 (0: after every step), "
                f"got {self.checkpoint_minutes}"
            )
        check_seed(self.seed)
        if not 0 <= self.epochs <= MAX_EPOCHS:
            raise UserError(
                f"--epochs must lie in [0, {MAX_EPOCHS}] (0: q is its start), got {self.epochs}"
            )
        positive = {
            "batch_size": self.batch_size,
            "prior_repeats": self.prior_repeats,
            "prior_batch": self.prior_batch,
        }
        for name, value in positive.items():
            if value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        self._check_bounds()
        for name in ("lr", "tau", "tau_final", "prior_l2"):
            if not getattr(self, name) > 0:
                raise UserError(
                    f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}"
                )
        if self.gate_lr < 0:
            raise UserError(f"--gate-lr must be >= 0, got {self.gate_lr}")
        if not 0 <= self.prune_below < 0.2:
            raise UserError(f"--prune-below must lie in [0, 0.2), got {self.prune_below}")
        if self.warmup_draws not in WARMUP_DRAWS:
            raise UserError(
                f"--warmup-draws must be {' or '.join(WARMUP_DRAWS)}, got {self.warmup_draws!r}"
            )
        if self.capture not in CAPTURE_MODES:
            raise UserError(f"--capture must be none, compile or cuda-graphs, got {self.capture!r}")
        if self.capture == "cuda-graphs" and self.device == "cpu":
            raise UserError(
                "--capture cuda-graphs needs a CUDA device: use --capture compile on CPU"
            )
        if not 0 <= self.aux_skip <= 1:
            raise UserError(f"--aux-skip must lie in [0, 1], got {self.aux_skip}")
        if not 0 <= self.skip_dropout < 1:
            raise UserError(f"--skip-dropout must lie in [0, 1), got {self.skip_dropout}")
        self._check_space_extras()
        if not 0 <= self.warmup < 1:
            raise UserError(f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if not 0 < self.init_drop < 1:
            raise UserError(f"--init-drop must lie in (0, 1), got {self.init_drop}")
        if not 0 < self.val_fraction < 1:
            raise UserError(f"--val-fraction must lie in (0, 1), got {self.val_fraction}")
        for name in ("kl_n", "train_size", "val_size", "eval_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.cost is not None and self.cost not in COSTS:
            raise UserError(f"--cost must be one of {', '.join(COSTS)}, got {self.cost!r}")
        if self.cost_weight < 0 or (self.cost_weight and self.cost is None):
            raise UserError(
                f"--cost-weight must be >= 0 and needs --cost {'|'.join(COSTS)}, "
                f"got {self.cost_weight} with cost {self.cost}"
            )
        self._check_prior()
        if self.sampler not in SEARCH_SAMPLERS:
            raise UserError(
                f"--sampler must be {' or '.join(SEARCH_SAMPLERS)}, got {self.sampler!r}"
            )
        from bayesnas.data import DATASETS

        check_space_options(self.space, self.space_options)
        if self.image_size is not None and self.image_size < 8:
            raise UserError(f"--image-size must be at least 8, got {self.image_size}")
        if self.dataset not in DATASETS:
            raise UserError(
                f"unknown dataset {self.dataset!r}; choose one of: {', '.join(DATASETS)}"
            )
        self._check_augmentation()
        return self

    def _check_bounds(self) -> None:
        """Values beyond what any run uses are refused, not run (see the MAX_ constants)."""
        bounds = {
            "lr": MAX_RATE, "gate_lr": MAX_RATE, "tau": MAX_TAU, "tau_final": MAX_TAU,
            "prior_l2": MAX_PRIOR_L2, "kl_n": MAX_KL_N, "cost_weight": MAX_COST_WEIGHT,
            "batch_size": MAX_BATCH, "prior_batch": MAX_BATCH,
            "prior_repeats": MAX_PRIOR_REPEATS, "workers": MAX_WORKERS,
        }  # fmt: skip
        for name, bound in bounds.items():
            value = getattr(self, name)
            if value is not None and value > bound:
                raise UserError(
                    f"--{name.replace('_', '-')} must be at most {bound:g}, got {value}"
                )

    def _check_prior(self) -> None:
        """The architecture prior's name, strength and proxy, and the likelihood temperature."""
        if self.arch_prior not in ARCH_PRIORS:
            raise UserError(
                f"--arch-prior must be {' or '.join(ARCH_PRIORS)}, got {self.arch_prior!r}"
            )
        if not 0 <= self.prior_strength <= MAX_PRIOR_STRENGTH:
            raise UserError(
                f"--prior-strength must lie in [0, {MAX_PRIOR_STRENGTH:g}], "
                f"got {self.prior_strength}"
            )
        if self.prior_cells is not None:
            try:
                check_space_options(self.space, {"cells": self.prior_cells})
            except UserError as exc:
                raise UserError(f"--prior-cells {self.prior_cells}: {exc}") from None
        if self.prior_proxy not in PRIOR_PROXIES:
            raise UserError(
                f"--prior-proxy must be one of {', '.join(PRIOR_PROXIES)}, got {self.prior_proxy!r}"
            )
        if not 1 <= self.likelihood_temperature <= MAX_TEMPERATURE:
            raise UserError(
                f"--likelihood-temperature must lie in [1, {MAX_TEMPERATURE:g}] "
                f"(1: Eq. 15), got {self.likelihood_temperature}"
            )
        if self.gate_data not in GATE_DATA:
            raise UserError(f"--gate-data must be {' or '.join(GATE_DATA)}, got {self.gate_data!r}")
        if self.gate_data == "held-out" and self.sampler != "posterior":
            raise UserError("--gate-data held-out fits q; --sampler uniform keeps q fixed")
        from bayesnas.spaces import get_space, list_spaces

        supported = get_space(self.space).arch_priors
        if self.arch_prior not in supported:
            having = [n for n in list_spaces() if self.arch_prior in get_space(n).arch_priors]
            raise UserError(
                f"--arch-prior {self.arch_prior} needs op gates per edge ({', '.join(having)}); "
                f"--space {self.space} supports {', '.join(supported)}"
            )

    def _check_space_extras(self) -> None:
        """Options that act on some spaces' parts only (e.g. their skip ops) are off elsewhere."""
        from bayesnas.spaces import get_space, list_spaces

        owners = {e: n for n in list_spaces() for e in get_space(n).search_extras}
        for name, owner in sorted(owners.items()):
            if getattr(self, name) and name not in get_space(self.space).search_extras:
                flag = "--" + name.replace("_", "-")
                raise UserError(f"{flag} acts on {owner}'s networks; --space {self.space} has none")

    def _check_augmentation(self) -> None:
        """Crop padding and cutout no larger than the image (ImageNet: its training crop)."""
        from bayesnas.data import dataset_info

        size = self.image_size or dataset_info(self.dataset).image_size
        if size == 0:  # a user's image folder: its size is read from the images at load time
            return
        flags = {"pad": "--crop-pad", "cutout": "--cutout"}
        for key, value in (self.augmentation or {}).items():
            if key in flags and isinstance(value, int) and value > size:
                raise UserError(
                    f"{flags[key]} {value} is larger than the {size}-pixel images of "
                    f"{self.dataset}; use at most {size}"
                )

    def input_size(self) -> int:
        """Side of the images the network sees in the search (what FLOPs are counted at)."""
        from bayesnas.data import dataset_info

        return self.image_size or dataset_info(self.dataset).image_size

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UserError(f"configuration has unknown fields {sorted(unknown)}: newer bayesnas?")
        return cls(**data)
