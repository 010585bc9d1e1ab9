"""Configuration: ``SearchConfig`` and its validation (``search``), the presets and
``build_config`` (``presets``)."""

from bayesnas.config.presets import PRESET_PURPOSE, PRESETS, build_config, space_preset
from bayesnas.config.search import (
    COSTS,
    MAX_EPOCHS,
    MAX_SEED,
    WARMUP_DRAWS,
    SearchConfig,
    check_seed,
    check_space_options,
)

__all__ = [
    "COSTS",
    "MAX_EPOCHS",
    "MAX_SEED",
    "PRESETS",
    "PRESET_PURPOSE",
    "SearchConfig",
    "WARMUP_DRAWS",
    "build_config",
    "check_seed",
    "check_space_options",
    "space_preset",
]
