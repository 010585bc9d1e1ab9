"""What the CLI shares: option types, defaults read from the configs, preset values in help,
space flags."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import click

POSITIVE_INT = click.IntRange(min=1)
NON_NEGATIVE_INT = click.IntRange(min=0)
SEED = click.IntRange(0, 2**32 - 1)  # NumPy's seeds are 32-bit


class NonEmptyPath(click.Path):
    """A path option that refuses the empty string (an unset shell variable, most often),
    which would otherwise mean the current directory."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail("is empty: pass a path", param, ctx)
        return super().convert(value, param, ctx)


PATH = NonEmptyPath(path_type=Path)


def default_of(config: type, name: str) -> Any:
    """The default of field ``name`` of dataclass ``config``: an option's default is declared
    there once, and the option reads it."""
    default = {field.name: field.default for field in dataclasses.fields(config)}[name]
    if default is dataclasses.MISSING:  # a required field or a default_factory: no one value
        raise TypeError(f"{config.__name__}.{name} has no plain default")
    return default


def space_names() -> list[str]:
    from bayesnas.spaces import list_spaces

    return list_spaces()


def space_option_table() -> dict[str, Any]:
    """Option name -> its SpaceOption, over every registered space (a name shared is one flag,
    whose help joins the spaces' and whose bounds are the loosest; config checks each space's)."""
    from bayesnas.spaces import get_space, list_spaces

    table: dict[str, Any] = {}
    for space in list_spaces():
        for option in get_space(space).options:
            known = table.get(option.name)
            if known is not None:  # one flag: each space's help says what it means there
                option = dataclasses.replace(
                    known,
                    help=f"{known.help} {option.help}",
                    minimum=min(known.minimum, option.minimum),
                    maximum=max(known.maximum, option.maximum),
                )
            table[option.name] = option
    return table


def space_flags(command: Any) -> Any:
    """One ``--NAME`` flag per space option, in the registry's order (the spaces own them)."""
    for option in reversed(list(space_option_table().values())):
        kind = click.IntRange(1, option.maximum)  # a higher minimum: config's check, its message
        command = click.option(option.flag, option.name, type=kind, help=option.help)(command)
    return command


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "all" if value is None else str(value)


def document_defaults(command: click.Command) -> None:
    """Append to each option's help its default and the value each --preset sets, as
    ``[default: 50; quick: 3, paper: 1800, bench: 50]``, from SearchConfig and PRESETS."""
    import inspect

    from bayesnas.config import PRESETS, SearchConfig
    from bayesnas.data import DEFAULT_AUGMENTATION
    from bayesnas.spaces import all_options, get_space

    base = SearchConfig()
    per_space: dict[str, dict[str, Any]] = {}
    for space, names in all_options().items():
        for name in names:
            default = inspect.signature(get_space(space).factory).parameters[name].default
            per_space.setdefault(name, {})[space] = default
    space_defaults = {
        name: _show(next(iter(values.values())))
        if len(set(values.values())) == 1
        else ", ".join(f"{space} {_show(v)}" for space, v in values.items())
        for name, values in per_space.items()
    }
    augment = {"crop_pad": "pad", "flip": "flip", "cutout": "cutout"}
    special = {
        "kl_n": "10x the search-train size",
        "data_root": "the first of $BAYESNAS_DATA, ~/.cache/bayesnas, Debian's path "
        "that holds the data set",
        "workers": "min(8, CPUs)",
        "image_size": "224",
        "device": "auto (cuda if present)",
        "cost": "off (the paper's flat prior)",
    }
    for param in command.params:
        name = param.name
        if not isinstance(param, click.Option) or name in ("preset", "out", "resume", "force"):
            continue
        if name in special:
            default = special[name]
        elif name in space_defaults:
            default = space_defaults[name]
        elif name in augment:
            default = "the data set's: " + ", ".join(
                f"{data} {_show(values[augment[name]])}"
                for data, values in DEFAULT_AUGMENTATION.items()
            )
        elif hasattr(base, name):
            default = _show(getattr(base, name))
        else:
            continue
        presets = []
        for preset, values in PRESETS.items():
            if name in values:
                presets.append(f"{preset}: {_show(values[name])}")
            elif name in space_defaults and name in values.get("space_options", {}):
                presets.append(f"{preset}: {_show(values['space_options'][name])}")
            elif name in augment and augment[name] in (values.get("augmentation") or {}):
                presets.append(f"{preset}: {_show(values['augmentation'][augment[name]])}")
            presets += _space_preset_values(preset, name)
        text = f"default: {default}" + (f"; {', '.join(presets)}" if presets else "")
        param.help = f"{param.help or ''}  [{text}]".strip()


def _space_preset_values(preset: str, name: str) -> list[str]:
    """``preset SPACE: value`` for each space whose record sets option ``name`` over ``preset``."""
    from bayesnas.spaces import get_space, list_spaces

    shown = []
    for space in list_spaces():
        own = get_space(space).presets.get(preset, {})
        value = own.get(name, own.get("space_options", {}).get(name))
        if value is not None:
            shown.append(f"{preset} {space}: {_show(value)}")
    return shown


def plain_text(rest: str) -> str:
    """A reST line as plain text: ``code`` and :role:`text` lose their markup."""
    rest = re.sub(r":[\w:]+:`([^`]*)`", r"\1", rest)
    return rest.replace("``", "").replace("`", "")


def announce(run_dir: Any) -> None:
    """Tell the user, on stderr, where a run's files go before the long work starts."""
    click.echo(f"run directory: {run_dir}", err=True)
