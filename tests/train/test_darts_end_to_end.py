"""The darts space end to end on tiny generated CIFAR-10: search, sample, export, plot, train;
DARTS genotypes through `bayesnas train --arch`, the darts training protocol, and bad genotypes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fakedata import write_cifar
from genotypes import DARTS_V2
from helpers import cli

import bayesnas
from bayesnas.config import SearchConfig
from bayesnas.report import plot_run
from bayesnas.search import run_search
from bayesnas.selection.sample import SampleConfig, sample
from bayesnas.spaces.darts.genotype import parse_genotype
from bayesnas.train.config import resolve_config

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ("--channels", "2", "--cells", "3", "--batch-size", "16", "--device", "cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fake-cifar10")
    write_cifar(root, "cifar10", train=96, test=16)
    return root


def test_search_sample_export_plot_train(data: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = SearchConfig(
        dataset="cifar10",
        space="darts",
        space_options={"channels": 2, "cells": 3},
        epochs=2,
        batch_size=16,
        warmup=0.5,
        gate_lr=1.0,
        eval_size=16,
        device="cpu",
        data_root=str(data),
    ).validated()
    run = tmp_path / "runs" / "search"
    run_search(config, run, progress=False)
    sample(SampleConfig(run=run, n=6, top_k=2, batch_size=32, device="cpu", progress=False))

    export = run / "export" / "rank-1"
    description = json.loads((export / "architecture.json").read_text())
    genotype = parse_genotype(description["architecture"])  # DARTS's notation, read back
    assert description["subnet"]["genotype"] == str(genotype)
    model = bayesnas.load_exported(export)
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert all(parse_genotype(r["architecture"]) for r in rows)

    index, _ = plot_run(run, None, "png")
    assert (index.parent / "06-architecture.png").is_file()
    assert "top-1 candidate: Genotype(normal=" in index.read_text()

    code, out, err = cli(
        capsys, "train", "--run", run, "--epochs", "1", "--batch-size", "16", "--device",
        "cpu", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads((tmp_path / "runs" / "train-search-rank1" / "result.json").read_text())
    assert result["space"] == "darts" and result["architecture"] == str(genotype)


def test_train_darts_protocol_on_a_genotype(data: Path, tmp_path: Path, capsys):
    config = resolve_config(arch=DARTS_V2, preset="darts", dataset="cifar10", data_root=data)
    assert (config.epochs, config.batch_size, config.lr, config.weight_decay) == (
        600, 96, 0.025, 3e-4,
    )  # fmt: skip
    assert (config.drop_path, config.auxiliary_weight, config.grad_clip) == (0.2, 0.4, 5.0)
    assert config.augmentation["cutout"] == 16 and config.subnet["auxiliary"] is True
    assert config.space_config["channels"] == 36 and config.space_config["cells"] == 20

    out = tmp_path / "trained"
    args = ("--arch", DARTS_V2, "--preset", "darts", "--epochs", "2", "--data-root", data)
    code, stdout, err = cli(capsys, "train", *args, *TINY, "--out", out, "--no-progress")
    assert code == 0, err
    assert "test accuracy:" in stdout
    saved = json.loads((out / "architecture.json").read_text())
    assert saved["architecture"] == DARTS_V2 and saved["subnet"]["auxiliary"] is False
    model = bayesnas.load_exported(out)  # the auxiliary head is training-only: not exported
    result = json.loads((out / "result.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == result["parameters"]
    assert model.net.auxiliary is None


BAD = [
    (("--arch", DARTS_V2.replace("sep_conv_3x3", "conv_9x9")), ("malformed --arch genotype",
                                                               "unknown op 'conv_9x9'")),
    (("--arch", DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 7)")),
     ("node 5 reads input 7", "out of range")),
    (("--arch", DARTS_V2.replace(", ('dil_conv_3x3', 2)", "")), ("node 5 has 1 input",)),
    (("--arch", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|"
      "nor_conv_3x3~1|nor_conv_3x3~2|", "--preset", "darts"), ("--drop-path", "DARTS genotype")),
]  # fmt: skip


@pytest.mark.parametrize(("args", "needles"), BAD, ids=[n[-1] for _, n in BAD])
def test_bad_genotypes_are_one_line_and_exit_2(data, tmp_path, capsys, monkeypatch, args, needles):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "train", *args, "--data-root", data, *TINY, "--no-progress")
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("bayesnas: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not list(tmp_path.iterdir()), "a refused run left files"
