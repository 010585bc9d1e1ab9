"""`bayesnas search`: estimate the posterior of a super-network by SVI."""

from __future__ import annotations

import os

import click

from bayesnas.cli.options import (
    NON_NEGATIVE_INT,
    PATH,
    POSITIVE_INT,
    SEED,
    announce,
    document_defaults,
    space_flags,
    space_names,
    space_option_table,
)
from bayesnas.cli.prior_options import prior_flags
from bayesnas.config.presets import PRESET_PURPOSE
from bayesnas.config.search import (
    CAPTURE_MODES,
    COSTS,
    MAX_BATCH,
    MAX_COST_WEIGHT,
    MAX_EPOCHS,
    MAX_KL_N,
    MAX_PRIOR_L2,
    MAX_RATE,
    MAX_TAU,
    MAX_WORKERS,
    SEARCH_SAMPLERS,
    WARMUP_DRAWS,
)
from bayesnas.errors import UserError


def rate() -> click.FloatRange:
    """A learning rate: above 0, at most MAX_RATE."""
    return click.FloatRange(0, MAX_RATE, min_open=True)


def temperature() -> click.FloatRange:
    """A Concrete temperature: above 0, at most MAX_TAU."""
    return click.FloatRange(0, MAX_TAU, min_open=True)


@click.command()
@click.option(
    "--dataset",
    help="cifar10 | cifar100 | fashion-mnist | mnist | imagenet | folder (any ImageFolder tree"
    " at --data-root: train/<class>/<images>).",
)
@click.option("--space", help=f"Search space: {' | '.join(space_names())}.")
@click.option(
    "--preset",
    type=click.Choice(list(PRESET_PURPOSE)),  # every preset, in the order --help tells them
    help="quick: minutes on a laptop CPU, any data set (Fashion-MNIST by default); cpu: the "
    "CIFAR-10 search for a 2-core CPU (at most 30 min); zero-cost: no training, q is the "
    "zero-cost prior (about a minute; any data set; rank with sample's default); bench: "
    "NAS-Bench-201's setting for GPUs (C=16, N=5, 50 epochs, 25k/25k); paper: the PGNAS "
    "paper's SupNet-M recipe; "
    "paper-mi: its SupNet-MI (72.7 M parameters, l2 150). "
    "A space may set its own values over a preset (--space darts: quick 5 cells at C=4 on 2k "
    "images; bench DARTS's 8 cells, C=16). `bayesnas presets` prints every value.",
)
@click.option(
    "--sampler",
    type=click.Choice(SEARCH_SAMPLERS),
    help="posterior: learn q(architecture) by SVI; uniform: keep q uniform (baseline).",
)
@click.option(
    "--epochs",
    type=click.IntRange(0, MAX_EPOCHS),
    help="Passes over the search-train split; 0: no SVI, q stays at its start (the prior).",
)
@click.option("--batch-size", type=click.IntRange(1, MAX_BATCH), help="Images per SVI step.")
@click.option("--lr", type=rate(), help="Initial learning rate of the weights (cosine to 0).")
@click.option(
    "--gate-lr",
    type=click.FloatRange(0, MAX_RATE),
    help="Initial learning rate of the gate logits.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(0, 1, max_open=True),
    help="Fraction of steps that train the weights on draws from a frozen q (--warmup-draws).",
)
@space_flags
@click.option("--tau", type=temperature(), help="Concrete temperature when q starts to learn.")
@click.option(
    "--tau-final",
    type=temperature(),
    help="Concrete temperature at the end (linear after the warm-up).",
)
@click.option(
    "--warmup-draws",
    type=click.Choice(WARMUP_DRAWS),
    help="Draws in the warm-up: one exact architecture per example, one per batch "
    "(single-path, several times cheaper on a GPU), or the relaxed mixture of every op "
    "(convs trained together, at the relaxed step's cost).",
)
@click.option(
    "--aux-skip",
    type=click.FloatRange(0, 1),
    help="nb201: weight of an auxiliary skip on every edge when q starts to learn, decayed "
    "linearly to 0 (DARTS-); 0 = off.",
)
@click.option(
    "--skip-dropout",
    type=click.FloatRange(0, 1, max_open=True),
    help="nb201: dropout rate after every skip op in training at the first step, decayed "
    "linearly to 0 at the last (P-DARTS); scoring and export never drop; 0 = off.",
)
@click.option(
    "--prune-below",
    type=click.FloatRange(0, 0.2, max_open=True),
    help="After the warm-up, an op whose probability under q is below this at an epoch end is "
    "pruned (never computed again); 0 = off.",
)
@click.option(
    "--init-drop",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Initial drop probability of Bernoulli groups.",
)
@click.option(
    "--prior-l2",
    "--l2",
    "prior_l2",
    type=click.FloatRange(0, MAX_PRIOR_L2, min_open=True),
    help="Precision l^2 of the Gaussian weight prior (the paper's l2).",
)
@click.option("--kl-n", type=click.IntRange(1, MAX_KL_N), help="N of Eq. 15 (the KL's scale).")
@click.option(
    "--cost",
    type=click.Choice(COSTS),
    help="Cost-aware architecture prior p(arch) ~ exp(-LAMBDA * cost), cost in MFLOPs or "
    "M params (needs --cost-weight).",
)
@click.option(
    "--cost-weight",
    type=click.FloatRange(0, MAX_COST_WEIGHT),
    help="LAMBDA of the cost-aware prior, per MFLOP or per M params; the KL is scaled by 1/N, "
    "so it matters at about N x the per-image NLL gain of a cost unit.",
)
@prior_flags
@click.option("--seed", type=SEED, help="Seed of initialisation, data order and gate noise.")
@click.option("--device", help="auto | cpu | cuda | cuda:N.")
@click.option(
    "--data-root",
    type=PATH,
    help="The folder that holds the data set; it must exist, and is the only one read.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Held-out share of the training set.",
)
@click.option("--train-size", type=POSITIVE_INT, help="Use at most this many search-train images.")
@click.option("--val-size", type=POSITIVE_INT, help="Use at most this many validation images.")
@click.option("--eval-size", type=POSITIVE_INT, help="Validation images scored after each epoch.")
@click.option(
    "--crop-pad", type=NON_NEGATIVE_INT, help="Random-crop padding in pixels, at most the image."
)
@click.option("--flip/--no-flip", default=None, help="Random horizontal flips.")
@click.option(
    "--cutout", type=NON_NEGATIVE_INT, help="Cutout square side, 0 = off, at most the image."
)
@click.option(
    "--workers", type=click.IntRange(0, MAX_WORKERS), help="Data-loading workers (ImageNet)."
)
@click.option("--image-size", type=click.IntRange(min=8), help="ImageNet training crop in pixels.")
@click.option(
    "--checkpoint-minutes",
    type=click.FloatRange(min=0),
    help="Also checkpoint mid-epoch this often (0: after every step).",
)
@click.option(
    "--sync-bn",
    is_flag=True,
    default=None,
    help="Under torchrun: BatchNorm statistics of the global batch (all ranks), not each "
    "rank's shard; the ranks then compute what one process computes on that batch.",
)
@click.option(
    "--capture",
    type=click.Choice(CAPTURE_MODES),
    help="Compile the step's network calls into static graphs: compile (torch.compile, CPU or "
    "CUDA) or cuda-graphs (also replayed as CUDA graphs); nb201 then computes every op q can "
    "draw on the whole batch. Steps with dynamic shapes stay eager (one note).",
)
@click.option(
    "--out",
    type=PATH,
    help="Run directory [runs/<dataset>-<space>-<timestamp>].",
)
@click.option("--resume", type=PATH, help="Continue the run in this directory.")
@click.option(
    "--force",
    is_flag=True,
    help="Replace an earlier run in --out: all of it (export/, plots/, samples) is removed.",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show progress on stderr (a bar on a terminal, a line every 30 s in a log file).",
)
def search(**opts) -> None:
    """Estimate the posterior over (architecture, weights) of a super-network by SVI."""
    from bayesnas.config import build_config
    from bayesnas.rundir import default_run_dir
    from bayesnas.search import check_start, run_search

    resume, force, out, progress = (opts.pop(k) for k in ("resume", "force", "out", "progress"))
    check_start(resume is not None, force)
    space_options = {k: opts.pop(k) for k in space_option_table()}
    preset = opts.pop("preset")
    given = {"pad": opts.pop("crop_pad"), "flip": opts.pop("flip"), "cutout": opts.pop("cutout")}
    augmentation = {k: v for k, v in given.items() if v is not None} or None
    if opts["data_root"] is not None:
        opts["data_root"] = str(opts["data_root"])
    if resume is not None:
        changed = [
            k
            for k, v in {**opts, **space_options, "preset": preset, "out": out}.items()
            if v is not None and k != "device"
        ]
        changed += ["crop_pad/flip/cutout"] if augmentation else []
        if changed:
            names = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise UserError(
                f"{names} cannot change a run being resumed (its config.json rules); "
                "only --device may"
            )
        summary = run_search(
            None,
            resume,
            resume=True,
            force=force,
            progress=progress,
            device=opts["device"],
            announce=announce,
        )
    else:
        config = build_config(
            preset, space_options=space_options, augmentation=augmentation, **opts
        )
        run_dir = out or default_run_dir(config.dataset, config.space)
        summary = run_search(config, run_dir, force=force, progress=progress, announce=announce)
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 alone reports
        return
    minutes, seconds = divmod(round(summary["seconds"]), 60)
    click.echo(f"posterior written to {summary['path']} ({minutes}m{seconds:02d}s)")
    if summary["sampler"] == "uniform":  # q stayed uniform: its argmax is no architecture at all
        click.echo(
            "uniformly trained super-network (q is flat, so it has no mode): rank its "
            f"sub-networks with `bayesnas sample --run {summary['path'].parent} --sampler uniform`"
        )
        return
    if summary["mode"] is None:  # tied gate logits: the argmax would be the first op, not a mode
        click.echo(
            "q has no mode (its gate logits are tied): rank its draws with "
            f"`bayesnas sample --run {summary['path'].parent}`"
        )
        return
    click.echo(
        f"posterior mode: {summary['mode']}\n"
        f"validation accuracy of the mode: {summary['mode_val_acc']:.2%} "
        f"on {summary['dataset']['val_images']} held-out images"
    )
    if summary["epochs"] == 0:
        click.echo(
            "no SVI (--epochs 0): q is the prior and the weights are untrained, so that accuracy "
            f"is chance; rank draws with `bayesnas sample --run {summary['path'].parent}` (by "
            "their zero-cost score) and train the export you keep (`bayesnas train`)"
        )


document_defaults(search)
