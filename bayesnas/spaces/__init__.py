"""Search spaces (hybrid super-networks), registered by name in ``registry``.

>>> from bayesnas.spaces import create_space, list_spaces
>>> list_spaces()
['darts', 'densenet121', 'nb201', 'resnet', 'resnet50']
>>> net = create_space("nb201", channels=8, cells=1, num_classes=10)

A space is one module that defines its super-network, its exact sub-network for export, its
options and its figure, and describes them in a :class:`Space` record; ``registry`` imports the
built-in spaces and registers their records (a user's own space: ``register_space(Space(...))``).
"""

from bayesnas.spaces.base import Space, SpaceOption, SuperNet, TrainRecipe
from bayesnas.spaces.registry import (
    all_options,
    create_space,
    get_space,
    list_spaces,
    lookup,
    register_space,
    unregister_space,
)

__all__ = [
    "Space",
    "SpaceOption",
    "SuperNet",
    "TrainRecipe",
    "all_options",
    "create_space",
    "get_space",
    "list_spaces",
    "lookup",
    "register_space",
    "unregister_space",
]
