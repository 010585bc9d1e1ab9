"""The registry of search spaces: the built-in ones, and any a user registers, by name."""

from __future__ import annotations

import difflib
import fnmatch
from typing import Any

from bayesnas.errors import UserError
from bayesnas.spaces import darts, densenet121, nb201, resnet, resnet50  # each registers its SPACE
from bayesnas.spaces.base import Space, SuperNet

_spaces: dict[str, Space] = {}


def register_space(space: Space) -> Space:
    """Register ``space`` under its name; a second registration of a name is an error."""
    if space.name in _spaces:
        raise ValueError(f"search space {space.name!r} is registered twice")
    _spaces[space.name] = space
    return space


def unregister_space(name: str) -> None:
    """Forget space ``name`` (tests register toy spaces and remove them again)."""
    _spaces.pop(name, None)


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching a shell-style pattern, sorted."""
    return sorted(n for n in _spaces if fnmatch.fnmatch(n, pattern))


def get_space(name: str) -> Space:
    """The space registered as ``name``; a UserError that names the known ones otherwise."""
    if name not in _spaces:
        close = difflib.get_close_matches(name, _spaces, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown space {name!r}{hint}; choose one of: {', '.join(list_spaces())}")
    return _spaces[name]


def lookup(name: Any) -> Space | None:
    """The space registered as ``name``, or None (no error: for callers with their own)."""
    return _spaces.get(name) if isinstance(name, str) else None


def all_options() -> dict[str, tuple[str, ...]]:
    """Space name -> the names of its options, for every registered space."""
    return {name: space.option_names for name, space in sorted(_spaces.items())}


def create_space(name: str, **config: Any) -> SuperNet:
    """Build space ``name``; options set to None keep the space's defaults."""
    return get_space(name).factory(**{k: v for k, v in config.items() if v is not None})


for _builtin in (nb201.SPACE, resnet.SPACE, darts.SPACE, densenet121.SPACE, resnet50.SPACE):
    register_space(_builtin)
