"""A user's own ImageFolder tree: facts read from its images, batches, and a search end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fakedata import write_image_folder
from helpers import run_cli

from bayesnas.config import build_config
from bayesnas.data import build_search_data
from bayesnas.errors import UserError


def test_facts_come_from_the_images(tmp_path: Path) -> None:
    write_image_folder(tmp_path, classes=("a", "b", "c"), mode="L", size=20)
    train, val, info, _ = build_search_data("folder", tmp_path, device="cpu", workers=0)
    assert (info.num_classes, info.channels, info.image_size) == (3, 1, 20)
    assert len(info.mean) == len(info.std) == 1 and 0.0 < info.mean[0] < 1.0
    assert len(train) + len(val) == 36 and len(val) == 18  # val_fraction 0.5, as everywhere
    images, labels = next(train.train_batches(6, epoch=0, seed=0))
    assert images.shape == (6, 1, 20, 20) and labels.dtype == torch.int64
    assert abs(float(images.mean())) < 1.0  # normalised with the measured mean and std


def test_rgb_tree_and_a_given_image_size(tmp_path: Path) -> None:
    write_image_folder(tmp_path, mode="RGB", size=24)
    train, _, info, _ = build_search_data(
        "folder", tmp_path, device="cpu", workers=0, image_size=16, augmentation={"pad": 2}
    )
    assert (info.channels, info.image_size, len(info.mean)) == (3, 16, 3)
    images, _ = next(train.train_batches(4, epoch=0, seed=0))
    assert images.shape == (4, 3, 16, 16)


def test_a_tree_without_train_or_root_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs --data-root"):
        build_search_data("folder", None, device="cpu")
    with pytest.raises(UserError, match="train/<class>"):
        build_search_data("folder", tmp_path, device="cpu")


def test_preset_sizes_are_cut_to_the_tree(tmp_path: Path) -> None:
    write_image_folder(tmp_path, per_class=10)
    config = build_config("quick", dataset="folder", data_root=str(tmp_path))
    assert (config.train_size, config.val_size) == (10, 10)


def test_search_on_a_folder_end_to_end(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "tree", per_class=16, val=4)
    run = tmp_path / "run"
    args = ("--channels", "4", "--cells", "1", "--epochs", "1", "--batch-size", "8")
    result = run_cli(
        "search", "--dataset", "folder", "--data-root", tmp_path / "tree", *args,
        "--workers", "0", "--out", run, "--no-progress", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    dataset = json.loads((run / "config.json").read_text())["config"]["dataset"]
    assert dataset == "folder"
    sampled = run_cli("sample", "--run", run, "--n", "4", "--top-k", "1", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    description = json.loads((run / "export/rank-1/architecture.json").read_text())
    assert description["dataset"]["image_size"] == 20 and description["dataset"]["channels"] == 1
    exported = run_cli("export", "--run", run, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
