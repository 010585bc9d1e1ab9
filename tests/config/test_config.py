"""SearchConfig: defaults < preset < explicit values, validation as one line, JSON round trip."""

from __future__ import annotations

import pytest

from bayesnas.config import PRESETS, SearchConfig, build_config, check_seed
from bayesnas.errors import UserError


def test_explicit_values_beat_the_preset_which_beats_the_defaults() -> None:
    assert build_config(None) == SearchConfig()
    quick = build_config("quick")
    assert (quick.epochs, quick.preset) == (PRESETS["quick"]["epochs"], "quick")
    mine = build_config("quick", epochs=7, lr=None)
    assert mine.epochs == 7 and mine.lr == quick.lr  # None leaves the preset's value


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(UserError, match="quick"):
        build_config("fastest")


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"gate_lr": -1.0}, "gate"),
        ({"epochs": -1}, "epochs"),
        ({"prior_strength": -1.0}, "prior-strength"),
        ({"prior_strength": float("nan")}, "prior-strength"),
        ({"likelihood_temperature": 0.5}, "likelihood-temperature"),
        ({"arch_prior": "zero-cost", "space": "resnet"}, "arch-prior"),
        ({"val_fraction": 1.0}, "val"),
        ({"space_options": {"width": 8}}, "width"),  # a resnet option on nb201
        ({"augmentation": {"cutout": 64}}, "cutout"),  # larger than 32-pixel CIFAR images
        ({"skip_dropout": 1.0}, "skip-dropout"),
        ({"space": "darts", "skip_dropout": 0.3}, "has none"),
    ],
)
def test_bad_values_are_one_line(changes: dict, needle: str) -> None:
    with pytest.raises(UserError, match=needle) as caught:
        SearchConfig().with_updates(**changes)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("seed", [-1, 2**32, True])
def test_seeds_outside_numpy_range_are_refused(seed: int) -> None:
    with pytest.raises(UserError, match="seed"):
        check_seed(seed)


def test_json_round_trip_is_exact() -> None:
    config = build_config("cpu", seed=3, space_options={"channels": 4})
    assert SearchConfig.from_json(config.to_json()) == config


def test_switching_space_drops_the_preset_space_options() -> None:
    config = build_config("quick", space="densenet121", space_options={"growth": 8})
    assert config.space_options == {"growth": 8}  # nb201's channels/cells are not carried over


def test_a_space_sets_its_own_values_over_a_preset() -> None:
    config = build_config("quick", space="resnet", space_options={"width": 4})
    assert config.space_options == {"width": 4, "blocks": 2}  # the user's width, resnet's blocks
    assert (config.kl_n, config.init_drop, config.epochs) == (12800, 0.3, 4)


def test_presets_use_the_zero_cost_prior_only_where_it_was_measured():
    assert build_config("cpu").arch_prior == "zero-cost"
    quick = build_config("quick")
    assert (quick.arch_prior, quick.likelihood_temperature) == ("zero-cost", 1000.0)
    # resnet has no op gates; darts has, but the prior is unmeasured there: Eq. 15 as before
    for space in ("darts", "resnet"):
        other = build_config("quick", space=space)
        assert (other.arch_prior, other.likelihood_temperature) == ("uniform", 1.0)
    with pytest.raises(UserError, match="arch-prior"):  # asked for: refused, not replaced
        build_config("quick", space="resnet", arch_prior="zero-cost")
    with pytest.raises(UserError, match="arch-prior"):  # the whole point of this preset
        build_config("zero-cost", space="resnet")


def test_cpu_is_quick_three_cells_deep_on_cifar10() -> None:
    """docs/benchmarks.md measured `cpu` as `--preset quick --dataset cifar10 --cells 3`."""
    quick = build_config("quick", dataset="cifar10", space_options={"cells": 3}).to_json()
    cpu = build_config("cpu").to_json()
    assert {k: v for k, v in quick.items() if k != "preset"} == {
        k: v for k, v in cpu.items() if k != "preset"
    }
