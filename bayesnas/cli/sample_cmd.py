"""`bayesnas sample`: draw, rank and export (architecture, weights) pairs."""

from __future__ import annotations

import os

import click

from bayesnas.cli.options import PATH, POSITIVE_INT, SEED, default_of
from bayesnas.config.search import MAX_BATCH, MAX_RATE
from bayesnas.selection.budget import MAX_ROUNDS
from bayesnas.selection.posterior import SAMPLERS
from bayesnas.selection.rank import BN_MODES
from bayesnas.selection.sample import DEFAULT_TOP_K, MAX_DRAWS, MAX_FINE_TUNE_STEPS, SampleConfig
from bayesnas.selection.scorers import SCORERS


@click.command()
@click.option("--run", type=PATH, help="Run directory [newest under ./runs].")
@click.option(
    "--n",
    "n",
    type=click.IntRange(1, MAX_DRAWS),
    default=default_of(SampleConfig, "n"),
    show_default=True,
    help="Architectures to draw.",
)
@click.option(
    "--top-k",
    type=click.IntRange(min=0),
    help="Export the k best as export/rank-K/, replacing an earlier export; 0 keeps it.  "
    f"[default: {DEFAULT_TOP_K}, or --n if fewer]",
)
@click.option(
    "--sampler",
    type=click.Choice(SAMPLERS),
    default=default_of(SampleConfig, "sampler"),
    show_default=True,
    help="posterior: the learned q; uniform: uniform over the space; fixed-dropout: "
    "one drop rate for every group (resnet).",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Drop rate of --sampler fixed-dropout [the posterior's mean drop rate].",
)
@click.option(
    "--bn",
    type=click.Choice(BN_MODES),
    default=default_of(SampleConfig, "bn"),
    show_default=True,
    help="stats: the super-network's BatchNorm statistics (paper); recalibrate: "
    "re-estimate them per candidate on training batches.",
)
@click.option(
    "--fine-tune-steps",
    type=click.IntRange(0, MAX_FINE_TUNE_STEPS),
    default=default_of(SampleConfig, "fine_tune_steps"),
    show_default=True,
    help="Score each candidate after this many SGD steps of its sub-network from the inherited "
    "weights (same training batches for all; the export keeps the tuned weights). 0: score the "
    "inherited weights as they are (paper).",
)
@click.option(
    "--fine-tune-lr",
    type=click.FloatRange(0, MAX_RATE, min_open=True),
    default=default_of(SampleConfig, "fine_tune_lr"),
    show_default=True,
    help="Starting learning rate of --fine-tune-steps (cosine to 0, Nesterov 0.9).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=default_of(SampleConfig, "batch_size"),
    show_default=True,
    help="Images per batch when scoring candidates and re-estimating BatchNorm.",
)
@click.option(
    "--val-size",
    type=POSITIVE_INT,
    help="Score on the first this-many validation images [all of the run's].",
)
@click.option(
    "--seed",
    type=SEED,
    default=default_of(SampleConfig, "seed"),
    show_default=True,
    help="Seed of the draws: the same seed draws the same architectures.",
)
@click.option(
    "--max-params",
    type=click.FloatRange(min=0, min_open=True),
    help="Keep only draws whose exported network has at most this many M parameters; others "
    f"are rejected and redrawn (at most {MAX_ROUNDS} x n draws) [no limit].",
)
@click.option(
    "--max-flops",
    type=click.FloatRange(min=0, min_open=True),
    help="Keep only draws of at most this many MFLOPs per image (rejected ones are redrawn) "
    "[no limit].",
)
@click.option(
    "--score",
    type=click.Choice(list(SCORERS)),
    help="How candidates are ranked: "
    + "; ".join(f"{name}: {scorer.help}" for name, scorer in SCORERS.items())
    + ".  [default: inherited; log-q for a search with --arch-prior zero-cost, zero-cost for "
    "one of --epochs 0, whose weights are untrained]",
)
@click.option(
    "--device",
    default=default_of(SampleConfig, "device"),
    show_default=True,
    help="auto | cpu | cuda | cuda:N.",
)
@click.option(
    "--progress/--no-progress",
    default=default_of(SampleConfig, "progress"),
    show_default=True,
    help="Show a progress bar on stderr.",
)
def sample(**opts) -> None:
    """Draw (architecture, weights) pairs from the posterior, rank them, export the best."""
    from bayesnas.selection.sample import sample as run_sample

    run_dir, rows = run_sample(SampleConfig(**opts))
    if os.environ.get("RANK", "0") != "0":  # under torchrun rank 0 alone reports
        return
    click.echo(_table(rows))
    drawn = sum(r["draws"] for r in rows)
    click.echo(
        f"{len(rows)} distinct of {drawn} draws, ranked by {rows[0]['score_by'] if rows else '-'}"
        f"; rows appended to {run_dir / 'samples.jsonl'}"
    )
    if rows and "budget_rejected" in rows[0]:
        click.echo(
            f"budget: {rows[0]['budget_rejected']} of {rows[0]['budget_drawn']} draws rejected "
            "as over it"
        )
    click.echo("front: on the Pareto front of validation accuracy against F = FLOPs, P = params")
    top_k = rows[0]["top_k"] if rows else 0
    if top_k:
        click.echo(f"top {min(top_k, len(rows))} exported under {run_dir / 'export'}")


def _table(rows: list[dict]) -> str:
    """The ranked candidates as an aligned text table."""
    latency = bool(rows) and "latency_ms_est" in rows[0]
    scored = bool(rows) and rows[0]["score_by"] != "inherited"  # a column for the score
    head = (
        f"{'rank':>4} "
        + (f"{'score':>9} " if scored else "")
        + f"{'val acc':>8} {'val NLL':>8} {'params M':>9} {'FLOPs M':>9} "
        + (f"{'~ms est':>8} " if latency else "")
        + f"{'log q':>8} {'draws':>5} {'front':>5}  architecture"
    )
    lines = [head]
    for r in rows:
        front = ("F" if r.get("pareto_flops") else "") + ("P" if r.get("pareto_params") else "")
        lines.append(
            f"{r['rank']:>4} "
            + (f"{r['score']:>9.3f} " if scored else "")
            + f"{r['val_acc']:>8.2%} {r['val_nll']:>8.4f} {r['params_m']:>9.3f} "
            f"{r['mflops']:>9.2f} "
            + (f"{r['latency_ms_est']:>8.3f} " if latency else "")
            + f"{r['log_q']:>8.2f} {r['draws']:>5} {front:>5}  {r['architecture']}"
        )
    return "\n".join(lines)
