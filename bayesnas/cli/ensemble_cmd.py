"""`bayesnas ensemble`: average the class probabilities of K (architecture, weights) pairs."""

from __future__ import annotations

from typing import Any

import click

from bayesnas.cli.options import PATH, POSITIVE_INT, SEED, default_of
from bayesnas.config.search import MAX_BATCH
from bayesnas.selection.ensemble import MAX_MEMBERS, EnsembleConfig
from bayesnas.selection.members import SOURCES, WEIGHTINGS
from bayesnas.selection.rank import BN_MODES


@click.command()
@click.option("--run", type=PATH, help="Run directory [newest under ./runs].")
@click.option(
    "--members",
    type=click.IntRange(1, MAX_MEMBERS),
    default=default_of(EnsembleConfig, "members"),
    show_default=True,
    help="K, the ensemble's size.",
)
@click.option(
    "--from",
    "source",
    type=click.Choice(SOURCES),
    default=default_of(EnsembleConfig, "source"),
    show_default=True,
    help="samples: the top-K distinct candidates of samples.jsonl by validation accuracy; "
    "posterior: K fresh draws from q (the Monte Carlo posterior predictive).",
)
@click.option(
    "--weights",
    type=click.Choice(WEIGHTINGS),
    default=default_of(EnsembleConfig, "weights"),
    show_default=True,
    help="uniform: 1/K per member (per draw); posterior: q(architecture) normalised over the "
    "distinct members.",
)
@click.option(
    "--bn",
    type=click.Choice(BN_MODES),
    default=default_of(EnsembleConfig, "bn"),
    show_default=True,
    help="stats: the super-network's BatchNorm statistics; recalibrate: re-estimate them per "
    "member on training batches.",
)
@click.option(
    "--test",
    is_flag=True,
    help="Also score the test split (read only here and by `train`; never by a search).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, MAX_BATCH),
    default=default_of(EnsembleConfig, "batch_size"),
    show_default=True,
    help="Images per batch.",
)
@click.option(
    "--val-size", type=POSITIVE_INT, help="Score on the first this-many validation images [all]."
)
@click.option(
    "--seed",
    type=SEED,
    default=default_of(EnsembleConfig, "seed"),
    show_default=True,
    help="Seed of the --from posterior draws.",
)
@click.option(
    "--device",
    default=default_of(EnsembleConfig, "device"),
    show_default=True,
    help="auto | cpu | cuda | cuda:N.",
)
@click.option(
    "--progress/--no-progress",
    default=default_of(EnsembleConfig, "progress"),
    show_default=True,
    help="Show a progress bar.",
)
def ensemble(**opts: Any) -> None:
    """Average the predicted probabilities of K sampled sub-networks (Bayesian model averaging)."""
    from bayesnas.selection.ensemble import ENSEMBLE
    from bayesnas.selection.ensemble import ensemble as run_ensemble

    run_dir, report = run_ensemble(EnsembleConfig(**opts))
    click.echo(ensemble_table(report))
    click.echo(f"written to {run_dir / ENSEMBLE}")


def ensemble_table(report: dict[str, Any]) -> str:
    """Accuracy, NLL, Brier and ECE of the ensemble, its best member and the mode, per split."""
    k, best = report["members"], report["best_member"] + 1
    lines = [
        f"ensemble of {k} from {report['source']}, {report['weights']} weights, BN {report['bn']}",
        f"{'split':<5} {'model':<24} {'accuracy':>9} {'NLL':>8} {'Brier':>8} {'ECE':>8}",
    ]
    names = {
        "ensemble": f"ensemble (K={k})",
        "best_member": f"best member (#{best})",
        "mode": "posterior mode",
    }
    for split, data in report["splits"].items():
        for key, name in names.items():
            m = data[key]
            lines.append(
                f"{split:<5} {name:<24} {m['accuracy']:>9.2%} {m['nll']:>8.4f} "
                f"{m['brier']:>8.4f} {m['ece']:>8.4f}"
            )
    return "\n".join(lines)
