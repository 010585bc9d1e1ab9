"""`bayesnas export`: a deployable ONNX or TorchScript file of an exported candidate."""

from __future__ import annotations

from pathlib import Path

import click

from bayesnas.cli.options import PATH
from bayesnas.errors import UserError
from bayesnas.export.deploy import DEPLOY_FILES


@click.command()
@click.option("--run", type=PATH, help="Run directory [newest under ./runs].")
@click.option(
    "--rank",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Which exported candidate (export/rank-K/).",
)
@click.option(
    "--format", "fmt", type=click.Choice(list(DEPLOY_FILES)), default="onnx", show_default=True
)
@click.option("--out", type=PATH, help="Output file [in export/rank-K/].")
@click.option(
    "--ensemble",
    is_flag=True,
    help="Export the run's ensemble (from `bayesnas ensemble`) to export-ensemble/: its members' "
    "smaller networks and one ONNX model averaging their probabilities.",
)
def export(run: Path | None, rank: int, fmt: str, out: Path | None, ensemble: bool) -> None:
    """Write a deployable ONNX or TorchScript file of an exported candidate or the ensemble."""
    from bayesnas.export import export_deployable
    from bayesnas.rundir import find_run

    if ensemble:
        from bayesnas.export.ensemble import ensemble_onnx
        from bayesnas.selection.ensemble_export import export_ensemble

        if fmt != "onnx":
            raise UserError("--ensemble exports ONNX only; drop --format or pass --format onnx")
        folder = export_ensemble(run)
        click.echo(f"members exported under {folder}; wrote {ensemble_onnx(folder, out)}")
        return

    folder = find_run(run) / "export" / f"rank-{rank}"
    if not folder.is_dir():
        raise UserError(f"{folder} does not exist: run `bayesnas sample` with --top-k >= {rank}")
    click.echo(f"wrote {export_deployable(folder, fmt, out)}")
