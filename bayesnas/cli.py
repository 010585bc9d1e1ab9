"""The ``bayesnas`` command line: thin click commands over the library.

Every user error is one line on stderr and exit status 2; Ctrl-C (SIGINT) or SIGTERM during a
search writes a checkpoint and exits 130 or 143 (128 + the signal) with the command that
resumes it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from bayesnas.cli_help import (
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    SEED,
    document_defaults,
    plain_text,
    space_flags,
    space_names,
    space_option_table,
)
from bayesnas.errors import Interrupted, UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="bayesnas")
def cli() -> None:
    """Posterior-guided one-shot neural architecture search (PGNAS) as a Pyro program."""


@cli.command()
@click.option("--dataset", help="cifar10 | cifar100 | fashion-mnist | mnist | imagenet.")
@click.option("--space", help=f"Search space: {' | '.join(space_names())}.")
@click.option(
    "--preset",
    type=click.Choice(["quick", "cpu", "bench", "paper"]),
    help="quick: minutes on a laptop CPU, any data set (Fashion-MNIST by default); cpu: the "
    "CIFAR-10 search for a 2-core CPU (at most 30 min); bench: NAS-Bench-201's setting for "
    "GPUs (C=16, N=5, 50 epochs, 25k/25k); paper: the PGNAS paper's SupNet-M recipe. "
    "`bayesnas presets` prints every value.",
)
@click.option(
    "--sampler",
    type=click.Choice(["posterior", "uniform"]),
    help="posterior: learn q(architecture) by SVI; uniform: keep q uniform (baseline).",
)
@click.option("--epochs", type=POSITIVE_INT, help="Passes over the search-train split.")
@click.option("--batch-size", type=POSITIVE_INT, help="Images per SVI step.")
@click.option("--lr", type=float, help="Initial learning rate of the weights (cosine to 0).")
@click.option("--gate-lr", type=float, help="Initial learning rate of the gate logits.")
@click.option(
    "--warmup",
    type=float,
    help="Fraction of steps that train the weights on exact draws from a frozen q.",
)
@space_flags
@click.option("--tau", type=float, help="Concrete temperature when q starts to learn.")
@click.option(
    "--tau-final", type=float, help="Concrete temperature at the end (linear after the warm-up)."
)
@click.option(
    "--warmup-draws",
    type=click.Choice(["example", "batch"]),
    help="Exact draws in the warm-up: one architecture per example, or one per batch "
    "(single-path, several times cheaper on a GPU).",
)
@click.option(
    "--aux-skip",
    type=float,
    help="nb201: weight of an auxiliary skip on every edge when q starts to learn, decayed "
    "linearly to 0 (DARTS-); 0 = off.",
)
@click.option(
    "--prune-below",
    type=float,
    help="After the warm-up, an op whose probability under q is below this at an epoch end is "
    "pruned (never computed again); 0 = off.",
)
@click.option("--init-drop", type=float, help="Initial drop probability of Bernoulli groups.")
@click.option(
    "--prior-l2",
    "--l2",
    "prior_l2",
    type=float,
    help="Precision l^2 of the Gaussian weight prior (the paper's l2).",
)
@click.option("--kl-n", type=POSITIVE_INT, help="N of Eq. 15 (the KL's scale).")
@click.option("--seed", type=SEED, help="Seed of initialisation, data order and gate noise.")
@click.option("--device", help="auto | cpu | cuda | cuda:N.")
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    help="The folder that holds the data set; it must exist, and is the only one read.",
)
@click.option("--val-fraction", type=float, help="Held-out share of the training set.")
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
@click.option("--workers", type=NON_NEGATIVE_INT, help="Data-loading workers (ImageNet).")
@click.option("--image-size", type=click.IntRange(min=8), help="ImageNet training crop in pixels.")
@click.option(
    "--checkpoint-minutes",
    type=float,
    help="Also checkpoint mid-epoch this often (0: after every step).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run directory [runs/<dataset>-<space>-<timestamp>].",
)
@click.option(
    "--resume", type=click.Path(path_type=Path), help="Continue the run in this directory."
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an earlier run in --out: all of it (export/, plots/, samples) is removed.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def search(**opts) -> None:
    """Estimate the posterior over (architecture, weights) of a super-network by SVI."""
    from bayesnas.config import build_config
    from bayesnas.rundir import default_run_dir
    from bayesnas.search import run_search

    resume, force, out, progress = (opts.pop(k) for k in ("resume", "force", "out", "progress"))
    if resume is not None and force:
        raise UserError(
            "--force and --resume contradict each other: --resume continues a run, "
            "--force starts it over; pass one"
        )
    space_options = {k: opts.pop(k) for k in space_option_table()}
    preset = opts.pop("preset")
    augmentation = {
        "pad": opts.pop("crop_pad"),
        "flip": opts.pop("flip"),
        "cutout": opts.pop("cutout"),
    }
    augmentation = {k: v for k, v in augmentation.items() if v is not None} or None
    if opts["data_root"] is not None:
        opts["data_root"] = str(opts["data_root"])
    if resume is not None:
        given = [
            k
            for k, v in {**opts, **space_options, "preset": preset, "out": out}.items()
            if v is not None and k != "device"
        ]
        given += ["crop_pad/flip/cutout"] if augmentation else []
        if given:
            names = ", ".join("--" + k.replace("_", "-") for k in given)
            raise UserError(
                f"{names} cannot change a run being resumed (its config.json rules); "
                "only --device may"
            )
        summary = run_search(
            None, resume, resume=True, progress=progress, device=opts["device"], announce=_announce
        )
    else:
        config = build_config(
            preset, space_options=space_options, augmentation=augmentation, **opts
        )
        run_dir = out or default_run_dir(config.dataset, config.space)
        summary = run_search(config, run_dir, force=force, progress=progress, announce=_announce)
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


def _announce(run_dir: Path) -> None:
    click.echo(f"run directory: {run_dir}", err=True)


document_defaults(search)


@cli.command()
@click.option("--run", type=click.Path(path_type=Path), help="Run directory [newest under ./runs].")
@click.option("--n", "n", type=int, default=20, show_default=True, help="Architectures to draw.")
@click.option(
    "--top-k",
    type=int,
    help="Export the k best as export/rank-K/, replacing an earlier export; 0 keeps it.  "
    "[default: 5, or --n if fewer]",
)
@click.option(
    "--sampler",
    type=click.Choice(["posterior", "uniform", "fixed-dropout"]),
    default="posterior",
    show_default=True,
    help="posterior: the learned q; uniform: uniform over the space; fixed-dropout: "
    "one drop rate for every group (resnet).",
)
@click.option(
    "--drop-rate",
    type=float,
    help="Drop rate of --sampler fixed-dropout [the posterior's mean drop rate].",
)
@click.option(
    "--bn",
    type=click.Choice(["stats", "recalibrate"]),
    default="stats",
    show_default=True,
    help="stats: the super-network's BatchNorm statistics (paper); recalibrate: "
    "re-estimate them per candidate on training batches.",
)
@click.option(
    "--batch-size",
    type=int,
    default=256,
    show_default=True,
    help="Images per batch when scoring candidates and re-estimating BatchNorm.",
)
@click.option("--val-size", type=int, help="Score on the first this-many validation images.")
@click.option(
    "--seed",
    type=SEED,
    default=0,
    show_default=True,
    help="Seed of the draws: the same seed draws the same architectures.",
)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda | cuda:N.")
@click.option(
    "--progress/--no-progress",
    default=True,
    show_default=True,
    help="Show a progress bar on stderr.",
)
def sample(**opts) -> None:
    """Draw (architecture, weights) pairs from the posterior, rank them, export the best."""
    from bayesnas.selection.sample import SampleConfig
    from bayesnas.selection.sample import sample as run_sample

    run_dir, rows = run_sample(SampleConfig(**opts))
    click.echo(_table(rows))
    click.echo(
        f"{len(rows)} distinct of {opts['n']} draws; rows appended to {run_dir / 'samples.jsonl'}"
    )
    top_k = rows[0]["top_k"] if rows else 0
    if top_k:
        click.echo(f"top {min(top_k, len(rows))} exported under {run_dir / 'export'}")


def _table(rows: list[dict]) -> str:
    """The ranked candidates as an aligned text table."""
    head = (
        f"{'rank':>4} {'val acc':>8} {'val NLL':>8} {'params M':>9} {'FLOPs M':>9} "
        f"{'log q':>8} {'draws':>5}  architecture"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['rank']:>4} {r['val_acc']:>8.2%} {r['val_nll']:>8.4f} {r['params_m']:>9.3f} "
            f"{r['mflops']:>9.2f} {r['log_q']:>8.2f} {r['draws']:>5}  {r['architecture']}"
        )
    return "\n".join(lines)


@cli.command()
@click.option("--run", type=click.Path(path_type=Path), help="Run directory [newest under ./runs].")
@click.option(
    "--rank",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Which exported candidate (export/rank-K/).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), help="Output file [in export/rank-K/].")
def export(run: Path | None, rank: int, fmt: str, out: Path | None) -> None:
    """Write a deployable ONNX or TorchScript file of an exported candidate."""
    from bayesnas.export import export_deployable
    from bayesnas.rundir import find_run

    folder = find_run(run) / "export" / f"rank-{rank}"
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist: run `bayesnas sample` with --top-k >= {rank}")
    click.echo(f"wrote {export_deployable(folder, fmt, out)}")


@cli.command()
@click.option(
    "--run", type=click.Path(path_type=Path), help="Search run to train an export of [newest]."
)
@click.option("--rank", type=click.IntRange(min=1), help="Which export (export/rank-K/) [1].")
@click.option("--arch", help="Train this NAS-Bench-201 cell string instead of an export.")
@click.option("--from-scratch", is_flag=True, help="Re-initialise every weight (the default).")
@click.option("--fine-tune", is_flag=True, help="Start from the export's weights (needs --run).")
@click.option(
    "--preset",
    help="nb201: NAS-Bench-201's protocol (200 epochs, lr 0.1, batch 256); short: 6 epochs, "
    "lr 0.05, batch 128 (C=8 N=1 on CIFAR-10: ~10 min on 2 CPU cores); finetune: 3 epochs, "
    "lr 0.01  [short; finetune with --fine-tune]",
)
@click.option("--epochs", type=int, help="Passes over the training split.")
@click.option("--batch-size", type=int, help="Images per SGD step.")
@click.option("--lr", type=float, help="Initial learning rate (cosine to 0, per step).")
@click.option("--weight-decay", type=float, help="SGD weight decay [5e-4].")
@click.option("--dataset", help="cifar10 | cifar100 | fashion-mnist | mnist  [the run's]")
@click.option("--data-root", type=click.Path(path_type=Path), help="Where the data set lies.")
@click.option("--channels", type=int, help="--arch: channels C of the first stage [run's, 16].")
@click.option("--cells", type=int, help="--arch: cells N per stage [run's, 5].")
@click.option("--train-size", type=int, help="Train on the first this-many images only.")
@click.option("--seed", type=int, help="Seed of initialisation, data order, augmentation [0].")
@click.option("--device", help="auto | cpu | cuda | cuda:N  [auto]")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory [runs/train-<name>].")
@click.option("--resume", type=click.Path(path_type=Path), help="Continue training in this run.")
@click.option("--force", is_flag=True, help="Overwrite an existing run directory.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar on stderr.")
def train(**opts) -> None:
    """Train an exported (or given) architecture on the full training split; test it."""
    from bayesnas.train import run_train
    from bayesnas.train_config import default_run_dir, resolve_config

    resume, force, out, progress = (opts.pop(k) for k in ("resume", "force", "out", "progress"))
    try:
        if resume is not None:
            given = [k for k, v in {**opts, "out": out}.items() if v not in (None, False)]
            given = [k for k in given if k != "device"]
            if given:
                names = ", ".join("--" + k.replace("_", "-") for k in given)
                raise UserError(f"{names} cannot change a run being resumed; only --device may")
            kwargs = {"resume": True, "force": force, "device": opts["device"]}
            result = run_train(None, resume, progress=progress, announce=_announce, **kwargs)
        else:
            config = resolve_config(**opts)
            run_dir = out or default_run_dir(config)
            result = run_train(config, run_dir, force=force, progress=progress, announce=_announce)
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


@cli.command()
@click.option("--run", type=click.Path(path_type=Path), help="Run directory [newest under ./runs].")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder [RUN/plots].")
@click.option(
    "--format", "fmt", type=click.Choice(["png", "svg", "pdf"]), default="png", show_default=True
)
def plot(run: Path | None, out: Path | None, fmt: str) -> None:
    """Draw the posterior diagnostics of a run (finished or still running) and an index.html."""
    from bayesnas.report import plot_run

    index, notes = plot_run(run, out, fmt)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"figures and index written: {index}")


@cli.command()
@click.option("--run", type=click.Path(path_type=Path), help="Run directory [newest under ./runs].")
def summary(run: Path | None) -> None:
    """Print a run's summary table: data, space, epochs, ELBO, best candidate."""
    from bayesnas.report import summary_text
    from bayesnas.rundir import find_run

    click.echo(summary_text(find_run(run)))


@cli.command("spaces")
def spaces_command() -> None:
    """List the registered search spaces."""
    from bayesnas.spaces import get_space, list_spaces

    for name in list_spaces():  # from each space's record: no network is built
        click.echo(f"{name:8s} {plain_text(get_space(name).summary)}")


@cli.command("presets")
def presets_command() -> None:
    """Print each search preset: what it is for and every value it sets."""
    from bayesnas.config import PRESET_PURPOSE, PRESETS

    for name, values in PRESETS.items():
        click.echo(f"{name}: {PRESET_PURPOSE[name]}")
        for key, value in values.items():
            click.echo(f"    {key.replace('_', '-')}: {value}")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning user errors into one line and exit 2."""

    try:
        code = cli.main(args=argv, prog_name="bayesnas", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # plain `bayesnas`: the usage, no error
        click.echo(exc.ctx.get_help() if exc.ctx else cli.get_usage(click.Context(cli)))
        sys.exit(0)
    except click.exceptions.Abort:
        click.echo("bayesnas: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"bayesnas: error: {exc.format_message()}", err=True)
        sys.exit(2)
    except UserError as exc:
        click.echo(f"bayesnas: error: {exc}", err=True)
        sys.exit(2)
    except Interrupted as exc:
        if exc.run_dir is None:  # a second signal: stopped at once
            click.echo(
                f"bayesnas: interrupted ({exc.signal_name}) again; stopped at once", err=True
            )
        else:
            click.echo(
                f"bayesnas: interrupted ({exc.signal_name}); checkpoint written. Resume with: "
                f"bayesnas search --resume {exc.run_dir}",
                err=True,
            )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("bayesnas: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
