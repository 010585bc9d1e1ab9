"""`bayesnas lookup`: a run's nb201 architectures in a NAS-Bench-201 or NATS-Bench file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bayesnas.cli.options import PATH
from bayesnas.selection.lookup import DEFAULT_HP, HPS


@click.command()
@click.option("--run", type=PATH, help="Run directory [newest under ./runs].")
@click.option("--arch", help="One NAS-Bench-201 string instead of a run's architectures.")
@click.option(
    "--benchmark",
    type=PATH,
    required=True,
    help="NAS-Bench-201 .pth or NATS-Bench topology .pickle.pbz2 file you downloaded.",
)
@click.option(
    "--hp",
    type=click.Choice(HPS),
    default=DEFAULT_HP,
    show_default=True,
    help=f"The benchmark's training schedule: {' or '.join(HPS)} epochs.",
)
def lookup(run: Path | None, arch: str | None, benchmark: Path, hp: str) -> None:
    """Print benchmark accuracies of a run's sampled and exported architectures (nb201)."""
    from bayesnas.selection.lookup import lookup as run_lookup

    result = run_lookup(run, arch, benchmark, hp)
    click.echo(lookup_table(result))
    if "path" in result:
        click.echo(f"written to {result['path']}")


def _pct(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "-"


def lookup_table(result: dict[str, Any]) -> str:
    """One row per architecture: our validation accuracy and the benchmark's, in %."""
    head = (
        f"{'source':<18} {'ours val':>8} {'C10 val':>7} {'C10 test':>8} {'C100 val':>8} "
        f"{'C100 test':>9} {'IN16 val':>8} {'IN16 test':>9}  file (version, hp)  architecture"
    )
    lines = [head]
    for r in result["rows"]:
        ours = f"{100 * r['val_acc']:.2f}" if r.get("val_acc") is not None else "-"
        lines.append(
            f"{r['source']:<18} {ours:>8} {_pct(r['cifar10_valid']):>7} "
            f"{_pct(r['cifar10_test']):>8} {_pct(r['cifar100_valid']):>8} "
            f"{_pct(r['cifar100_test']):>9} {_pct(r['imagenet16_valid']):>8} "
            f"{_pct(r['imagenet16_test']):>9}  {r['file']} ({r['version']}, hp {r['hp']})  "
            f"{r['architecture']}"
        )
    return "\n".join(lines)
