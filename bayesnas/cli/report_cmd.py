"""`bayesnas plot` and `bayesnas summary`: what a run shows, drawn or tabulated."""

from __future__ import annotations

from pathlib import Path

import click

from bayesnas.cli.options import PATH
from bayesnas.rundir import PLOT_FORMATS


@click.command()
@click.option("--run", type=PATH, help="Run directory [newest under ./runs].")
@click.option("--out", type=PATH, help="Output folder [RUN/plots].")
@click.option(
    "--format", "fmt", type=click.Choice(PLOT_FORMATS), default=PLOT_FORMATS[0], show_default=True
)
def plot(run: Path | None, out: Path | None, fmt: str) -> None:
    """Draw the posterior diagnostics of a run (finished or still running) and an index.html."""
    from bayesnas.report import plot_run

    index, notes = plot_run(run, out, fmt)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"figures and index written: {index}")


@click.command()
@click.option("--run", type=PATH, help="Run directory [newest under ./runs].")
def summary(run: Path | None) -> None:
    """Print a run's summary table: data, space, epochs, ELBO, best candidate."""
    from bayesnas.report import summary_text
    from bayesnas.rundir import find_run

    click.echo(summary_text(find_run(run)))
