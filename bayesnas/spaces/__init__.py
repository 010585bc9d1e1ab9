"""Search spaces (hybrid super-networks), registered by name.

>>> from bayesnas.spaces import create_space, list_spaces
>>> list_spaces()
['nb201', 'resnet']
>>> net = create_space("nb201", channels=8, cells=1, num_classes=10)
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any

from bayesnas.errors import UserError
from bayesnas.spaces.base import SuperNet

_factories: dict[str, Callable[..., SuperNet]] = {}  # space name -> factory(**config)


def register_space(name: str) -> Callable[[Callable[..., SuperNet]], Callable[..., SuperNet]]:
    """Register a factory under ``name``; a second registration of a name is an error."""

    def decorate(factory: Callable[..., SuperNet]) -> Callable[..., SuperNet]:
        if name in _factories:
            raise ValueError(f"search space {name!r} is registered twice")
        _factories[name] = factory
        return factory

    return decorate


def list_spaces(pattern: str = "*") -> list[str]:
    """Registered space names matching a shell-style pattern, sorted."""
    return sorted(n for n in _factories if fnmatch.fnmatch(n, pattern))


def create_space(name: str, **config: Any) -> SuperNet:
    """Build space ``name``; options set to None keep the space's defaults."""
    if name not in _factories:
        close = difflib.get_close_matches(name, _factories, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown space {name!r}{hint}; choose one of: {', '.join(list_spaces())}")
    return _factories[name](**{k: v for k, v in config.items() if v is not None})


from bayesnas.spaces import nb201, resnet  # noqa: E402, F401  (registration on import)

__all__ = ["SuperNet", "create_space", "list_spaces", "register_space"]
