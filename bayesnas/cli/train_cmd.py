"""`bayesnas train`: train an exported or given architecture; report test accuracy."""

from __future__ import annotations

import click

from bayesnas.cli.options import (
    NON_NEGATIVE_INT,
    PATH,
    POSITIVE_INT,
    SEED,
    announce,
    default_of,
    space_option_table,
)
from bayesnas.config import MAX_EPOCHS
from bayesnas.config.search import MAX_BATCH, MAX_RATE
from bayesnas.errors import Interrupted, UserError
from bayesnas.train.config import FINE_TUNE_PRESET, TrainConfig, presets


def preset_values(key: str, otherwise: object = None) -> str:
    """What each --preset sets ``key`` to, e.g. '[short: 6, nb201: 200]' (``otherwise``: the
    value of presets that leave it unset)."""
    values = [
        f"{name}: {preset.get(key, otherwise)}"
        for name, preset in presets().items()
        if key in preset or otherwise is not None
    ]
    return f"[{', '.join(values)}]"


@click.command()
@click.option("--run", type=PATH, help="Search run to train an export of [newest].")
@click.option("--rank", type=click.IntRange(min=1), help="Which export (export/rank-K/) [1].")
@click.option(
    "--arch",
    help="Train this architecture instead of an export: a NAS-Bench-201 cell string, or a DARTS "
    'genotype "Genotype(normal=[...], ...)" (DARTS\'s evaluation network).',
)
@click.option("--from-scratch", is_flag=True, help="Re-initialise every weight (the default).")
@click.option("--fine-tune", is_flag=True, help="Start from the export's weights (needs --run).")
@click.option(
    "--preset",
    help="nb201: NAS-Bench-201's protocol (200 epochs, lr 0.1, batch 256); short: 6 epochs, "
    "lr 0.05, batch 128 (C=8 N=1 on CIFAR-10: ~10 min on 2 CPU cores); finetune: 3 epochs, "
    "lr 0.01; darts: DARTS's CIFAR-10 protocol (600 epochs, batch 96, lr 0.025, weight decay "
    "3e-4, cutout 16, drop-path 0.2, auxiliary weight 0.4, gradient clip 5)  "
    f"[{default_of(TrainConfig, 'preset')}; {FINE_TUNE_PRESET} with --fine-tune]",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, MAX_EPOCHS),
    help=f"Passes over the training split {preset_values('epochs')}.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    help=f"Images per SGD step {preset_values('batch_size')}.",
)
@click.option(
    "--lr",
    type=click.FloatRange(0, MAX_RATE, min_open=True),
    help=f"Initial learning rate, cosine to 0 per step {preset_values('lr')}.",
)
@click.option(
    "--weight-decay",
    type=click.FloatRange(0, 1),
    help=f"SGD weight decay {preset_values('weight_decay')}.",
)
@click.option(
    "--cutout",
    type=NON_NEGATIVE_INT,
    help=f"Cutout square side in pixels, 0 = off {preset_values('cutout', 0)}.",
)
@click.option(
    "--drop-path",
    type=click.FloatRange(0, 1, max_open=True),
    help=f"darts: drop-path probability at the last epoch {preset_values('drop_path', 0)}.",
)
@click.option(
    "--auxiliary-weight",
    type=click.FloatRange(min=0),
    help="darts: weight of the auxiliary head's loss, 0 = no head "
    f"{preset_values('auxiliary_weight', 0)}.",
)
@click.option(
    "--grad-clip",
    type=click.FloatRange(min=0, min_open=True),
    help=f"Clip the gradient norm to this {preset_values('grad_clip', 'off')}.",
)
@click.option("--dataset", help="cifar10 | cifar100 | fashion-mnist | mnist  [the run's]")
@click.option(
    "--data-root",
    type=PATH,
    help="Where the data set lies [the search run's; else $BAYESNAS_DATA, the cache, "
    "Debian's path].",
)
@click.option(
    "--channels",
    type=click.IntRange(1, space_option_table()["channels"].maximum),
    help="--arch: channels C of the first stage (cells) [the run's; nb201 16, darts 36].",
)
@click.option(
    "--cells",
    type=click.IntRange(1, space_option_table()["cells"].maximum),
    help="--arch: nb201: cells N per stage; darts: cells [run's; 5, 20].",
)
@click.option(
    "--train-size", type=POSITIVE_INT, help="Train on the first this-many images only [all]."
)
@click.option(
    "--seed",
    type=SEED,
    help=f"Seed of initialisation, data order, augmentation [{default_of(TrainConfig, 'seed')}].",
)
@click.option("--device", help=f"auto | cpu | cuda | cuda:N  [{default_of(TrainConfig, 'device')}]")
@click.option("--out", type=PATH, help="Run directory [runs/train-<name>].")
@click.option("--resume", type=PATH, help="Continue training in this run.")
@click.option("--force", is_flag=True, help="Overwrite an existing run directory.")
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show progress on stderr (a bar on a terminal, a line every 30 s in a log file).",
)
def train(**opts) -> None:
    """Train an exported (or given) architecture on the full training split; test it."""
    from bayesnas.train.config import default_run_dir, resolve_config
    from bayesnas.train.run import run_train

    resume, force, out, progress = (opts.pop(k) for k in ("resume", "force", "out", "progress"))
    try:
        if resume is not None:
            given = [k for k, v in {**opts, "out": out}.items() if v not in (None, False)]
            given = [k for k in given if k != "device"]
            if given:
                names = ", ".join("--" + k.replace("_", "-") for k in given)
                raise UserError(f"{names} cannot change a run being resumed; only --device may")
            kwargs = {"resume": True, "force": force, "device": opts["device"]}
            result = run_train(None, resume, progress=progress, announce=announce, **kwargs)
        else:
            config = resolve_config(**opts)
            run_dir = out or default_run_dir(config)
            result = run_train(config, run_dir, force=force, progress=progress, announce=announce)
    except Interrupted as exc:
        click.echo(
            f"bayesnas: interrupted; checkpoint written. Resume with: "
            f"bayesnas train --resume {exc.args[0]}",
            err=True,
        )
        raise click.exceptions.Exit(128 + exc.args[1]) from None
    minutes, seconds = divmod(round(result["seconds"]), 60)
    click.echo(
        f"test accuracy: {result['test_accuracy']:.2%} on {result['test_images']} test images "
        f"({result['mode']}, {result['epochs']} epoch{'s' * (result['epochs'] != 1)}, "
        f"{minutes}m{seconds:02d}s); "
        f"written to {result['path']}"
    )
