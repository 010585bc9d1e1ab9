"""The ``bayesnas`` command line: thin click commands over the library, one module each.

Every user error is one line on stderr and exit status 2; Ctrl-C (SIGINT) or SIGTERM during a
search writes a checkpoint and exits 130 or 143 (128 + the signal) with the command that
resumes it.
"""

from __future__ import annotations

import os
import sys

import click

from bayesnas.cli.ensemble_cmd import ensemble
from bayesnas.cli.export_cmd import export
from bayesnas.cli.listing_cmd import presets_command, spaces_command
from bayesnas.cli.lookup_cmd import lookup
from bayesnas.cli.report_cmd import plot, summary
from bayesnas.cli.sample_cmd import sample
from bayesnas.cli.search_cmd import search
from bayesnas.cli.train_cmd import train
from bayesnas.errors import Interrupted, UserError

COMMANDS = (
    search,
    sample,
    ensemble,
    export,
    train,
    plot,
    summary,
    lookup,
    spaces_command,
    presets_command,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="bayesnas")
def cli() -> None:
    """Posterior-guided one-shot neural architecture search (PGNAS) as a Pyro program."""


for _command in COMMANDS:
    cli.add_command(_command)


def _reports(exc: Exception) -> bool:
    """Whether this process prints ``exc``: under torchrun the ranks meet the same errors, and
    rank 0 alone reports them, except an error of one rank only (``every_rank``)."""
    return os.environ.get("RANK", "0") == "0" or getattr(exc, "every_rank", False)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning user errors into one line and exit 2. Under
    torchrun the process leaves through ``distributed.exit_now`` once its work is written."""
    try:
        _main(argv)
    except SystemExit as exc:
        if "torch.distributed" in sys.modules:
            from bayesnas import distributed

            if distributed.joined():
                distributed.exit_now(exc.code if isinstance(exc.code, int) else 1)
        raise


def _main(argv: list[str] | None) -> None:
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
        if _reports(exc):
            click.echo(f"bayesnas: error: {exc}", err=True)
        sys.exit(2)
    except Interrupted as exc:
        if not _reports(exc):
            pass
        elif exc.run_dir is None:  # a second signal: stopped at once
            click.echo(
                f"bayesnas: interrupted ({exc.signal_name}) again; stopped at once", err=True
            )
        else:
            resume = f"search --resume {exc.run_dir}"
            how = (
                f"the same torchrun command with: {resume}"
                if int(os.environ.get("WORLD_SIZE", "1")) > 1
                else f"bayesnas {resume}"
            )
            click.echo(
                f"bayesnas: interrupted ({exc.signal_name}); checkpoint written. Resume with {how}",
                err=True,
            )
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("bayesnas: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
