"""`bayesnas export`: a deployable ONNX or TorchScript file of an exported candidate."""

from __future__ import annotations

from pathlib import Path

import click

from bayesnas.errors import UserError


@click.command()
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
