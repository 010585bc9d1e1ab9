"""`bayesnas spaces` and `bayesnas presets`: what can be searched, and with which settings."""

from __future__ import annotations

import click

from bayesnas.cli.options import plain_text


@click.command("spaces")
def spaces_command() -> None:
    """List the registered search spaces."""
    from bayesnas.spaces import get_space, list_spaces

    names = list_spaces()
    width = max(map(len, names), default=0)
    for name in names:  # from each space's record: no network is built
        click.echo(f"{name:{width}s} {plain_text(get_space(name).summary)}")


@click.command("presets")
def presets_command() -> None:
    """Print each search preset: what it is for and every value it sets."""
    from bayesnas.config import PRESET_PURPOSE, PRESETS
    from bayesnas.spaces import get_space, list_spaces

    for name, values in PRESETS.items():
        click.echo(f"{name}: {PRESET_PURPOSE[name]}")
        for key, value in values.items():
            click.echo(f"    {key.replace('_', '-')}: {value}")
        for space in list_spaces():  # a space's own values over this preset
            for key, value in get_space(space).presets.get(name, {}).items():
                click.echo(f"    with --space {space}: {key.replace('_', '-')}: {value}")
