"""The ImageNet priors through the commands: listed without being built, searched on a small
generated JPEG tree, sampled, exported (ONNX) and plotted; and the SupNet-MI preset."""

from __future__ import annotations

import dataclasses
import json
import traceback
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from fakedata import write_imagenet
from helpers import count

from bayesnas.cli import main
from bayesnas.config import PRESETS, build_config
from bayesnas.export import load_exported
from bayesnas.spaces import create_space, list_spaces, registry
from bayesnas.spaces.base import SuperNet

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = {
    "densenet121": ["--growth", "4", "--dense-layers", "2"],
    "resnet50": ["--base-width", "3", "--bottlenecks", "1"],
}


def cli(capsys: pytest.CaptureFixture, *args: str | Path) -> tuple[int, str, str]:
    """Run ``bayesnas ARGS`` in-process; (exit status, stdout, stderr with any traceback)."""
    capsys.readouterr()
    crash = ""
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        code, crash = -1, traceback.format_exc()
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err + crash


def test_spaces_lists_every_space_without_building_one(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("`bayesnas spaces` built a network")

    monkeypatch.setattr(SuperNet, "__init__", refuse)
    for name in list_spaces():
        space = registry.get_space(name)
        monkeypatch.setitem(registry._spaces, name, dataclasses.replace(space, factory=refuse))
    code, out, err = cli(capsys, "spaces")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == list_spaces()
    assert {"densenet121", "resnet50", "nb201", "resnet"} <= set(list_spaces())
    assert "DenseNet-121" in out and "dilated" in out


def test_paper_mi_is_supnet_mi():
    config = build_config("paper-mi")
    assert config.space == "resnet" and config.prior_l2 == 150.0
    assert {
        k: v for k, v in PRESETS["paper"].items() if k not in ("space_options", "prior_l2")
    } == {
        k: v for k, v in PRESETS["paper-mi"].items() if k not in ("space_options", "prior_l2")
    }  # the SupNet-M recipe otherwise
    net = create_space("resnet", **config.space_options)
    assert round(count(net) / 1e6, 1) == 72.7


@pytest.mark.parametrize("space", sorted(TINY))
def test_imagenet_search_sample_export_and_plot(space, tmp_path, isolated_data_env, capsys):
    data, run = tmp_path / "data", tmp_path / "run"
    write_imagenet(data, train=6, val=1)
    code, _, err = cli(
        capsys, "search", "--dataset", "imagenet", "--data-root", data, "--space", space,
        *TINY[space], "--image-size", "32", "--epochs", "2", "--batch-size", "3",
        "--workers", "0", "--device", "cpu", "--no-progress", "--out", run,
    )  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(0 <= r["val_acc"] <= 1 for r in rows)
    code, _, err = cli(
        capsys, "sample", "--run", run, "--n", "6", "--top-k", "2", "--batch-size", "3",
        "--device", "cpu", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    config = json.loads((run / "config.json").read_text())["config"]
    net = create_space(space, **config["space_options"])
    best = max(samples, key=lambda r: r["val_acc"])
    assert best["architecture"] == net.describe(net.decode(best["encoding"]))
    export = run / "export" / "rank-1"
    description = json.loads((export / "architecture.json").read_text())
    assert description["space"] == space and description["parameters"] <= count(net)
    code, out, err = cli(capsys, "export", "--run", run, "--format", "onnx")
    assert code == 0, err
    images = np.random.default_rng(0).random((2, 3, 32, 32), dtype=np.float32)
    session = ort.InferenceSession(str(export / "model.onnx"))
    (logits,) = session.run(None, {"images": images})
    with torch.no_grad():
        expected = load_exported(export)(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    code, _, err = cli(capsys, "plot", "--run", run)
    assert code == 0, err
    assert (run / "plots" / "06-architecture.png").is_file()
    code, out, err = cli(capsys, "summary", "--run", run)
    assert code == 0 and space in out, err
