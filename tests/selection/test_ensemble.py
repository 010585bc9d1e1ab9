"""`bayesnas ensemble`: averaging probabilities, one member is that member, bad input, files."""

import json
import traceback
from pathlib import Path

import pytest
import torch

from bayesnas.cli import main
from bayesnas.config import build_config
from bayesnas.search import run_search
from bayesnas.selection.ensemble import ENSEMBLE, EnsembleConfig, ensemble, predict
from bayesnas.selection.members import slot_weights
from bayesnas.selection.posterior import load_posterior
from bayesnas.selection.sample import SampleConfig, sample

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
pytestmark = [
    pytest.mark.skipif(not FMNIST.is_file(), reason="Debian's Fashion-MNIST absent"),
    pytest.mark.usefixtures("one_thread"),
]


def cli(capsys, *args) -> tuple[int, str, str]:
    """``bayesnas ARGS`` in-process: (exit status, stdout, stderr incl. any traceback)."""
    capsys.readouterr()
    crash = ""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:
        code, crash = -1, traceback.format_exc()
    out, err = capsys.readouterr()
    return code, out, err + crash


def one_line(code: int, err: str, needle: str) -> None:
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesnas: error: ") and needle in lines[0], err


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A tiny finished search, no samples yet."""
    config = build_config(
        None, dataset="fashion-mnist", space_options={"channels": 4, "cells": 1}, epochs=1,
        batch_size=64, train_size=512, val_size=256, eval_size=256, gate_lr=1.0, device="cpu",
    )  # fmt: skip
    run = tmp_path_factory.mktemp("ens") / "run"
    torch.set_num_threads(1)
    run_search(config, run, progress=False)
    return run


@pytest.fixture(scope="module")
def sampled(searched: Path, tmp_path_factory) -> Path:
    import shutil

    run = Path(shutil.copytree(searched, tmp_path_factory.mktemp("sampled") / "run"))
    sample(SampleConfig(run=run, n=8, top_k=0, sampler="uniform", device="cpu", progress=False))
    return run


def test_no_samples_yet_is_one_line(searched, capsys):
    code, _, err = cli(capsys, "ensemble", "--run", searched, "--no-progress")
    one_line(code, err, "no samples yet")


def test_more_members_than_distinct_candidates_is_one_line(sampled, capsys):
    rows = [json.loads(line) for line in (sampled / "samples.jsonl").read_text().splitlines()]
    distinct = len({r["encoding"] for r in rows})
    code, _, err = cli(
        capsys, "ensemble", "--run", sampled, "--members", distinct + 1, "--no-progress"
    )
    one_line(code, err, f"more than the {distinct} distinct candidates")


def test_an_ensemble_of_one_is_that_member(sampled):
    _, report = ensemble(EnsembleConfig(run=sampled, members=1, device="cpu", progress=False))
    val = report["splits"]["val"]
    assert val["ensemble"] == val["best_member"] == val["members"][0]
    assert report["member_list"][0]["weight"] == 1.0
    # and that member's metrics are the ones `sample` ranked it by
    rows = [json.loads(line) for line in (sampled / "samples.jsonl").read_text().splitlines()]
    top = max(rows, key=lambda r: (r["val_acc"], -r["val_nll"]))
    assert report["member_list"][0]["encoding"] == top["encoding"]
    assert val["ensemble"]["accuracy"] == pytest.approx(top["val_acc"])
    assert val["ensemble"]["nll"] == pytest.approx(top["val_nll"], rel=1e-5)


def test_the_ensemble_averages_probabilities_and_writes_its_file(sampled, capsys):
    code, out, err = cli(
        capsys, "ensemble", "--run", sampled, "--members", "3", "--test", "--no-progress",
        "--device", "cpu",
    )  # fmt: skip
    assert code == 0, err
    assert "ensemble (K=3)" in out and "test" in out
    report = json.loads((sampled / ENSEMBLE).read_text())
    assert set(report["splits"]) == {"val", "test"}
    assert report["splits"]["test"]["ensemble"]["images"] == 10000
    assert [s["k"] for s in report["splits"]["val"]["sizes"]] == [1, 2, 3]
    assert len(report["splits"]["val"]["reliability"]["ensemble"]) == 15
    # recompute the average by hand from the members' probabilities
    posterior = load_posterior(sampled, torch.device("cpu"))
    net = posterior.program.net
    from bayesnas.selection.sample import _data

    val_batches, _, _ = _data(posterior, torch.device("cpu"), SampleConfig())
    probs = [
        predict(net, net.decode(m["encoding"]), val_batches())[0] for m in report["member_list"]
    ]
    labels = predict(net, net.decode(report["member_list"][0]["encoding"]), val_batches())[1]
    mean = torch.stack(probs).mean(0)
    picked = mean.gather(1, labels[:, None]).squeeze(1)
    assert report["splits"]["val"]["ensemble"]["nll"] == pytest.approx(
        float(-picked.log().mean()), rel=1e-9
    )


def test_posterior_draws_and_posterior_weights(sampled):
    _, report = ensemble(
        EnsembleConfig(
            run=sampled,
            members=4,
            source="posterior",
            weights="posterior",
            device="cpu",
            progress=False,
        )  # fmt: skip
    )
    weights = [m["weight"] for m in report["member_list"]]
    assert sum(weights) == pytest.approx(1.0) and len(report["slots"]) == 4
    log_q = torch.tensor([m["log_q"] for m in report["member_list"]], dtype=torch.float64)
    assert torch.allclose(torch.tensor(weights, dtype=torch.float64), torch.softmax(log_q, 0))


def test_uniform_weights_count_each_draw():
    class M:
        def __init__(self, log_q):
            self.log_q = log_q

    members = [M(-1.0), M(-2.0)]
    assert slot_weights(members, [0, 0, 1], "uniform").tolist() == pytest.approx([2 / 3, 1 / 3])
    assert slot_weights(members, [0, 0], "posterior").tolist() == [1.0, 0.0]


def test_export_ensemble_loads_as_the_average_and_as_onnx(sampled, capsys, tmp_path):
    import numpy as np
    import onnxruntime

    from bayesnas.export import load_exported
    from bayesnas.export.ensemble import EnsembleModel

    code, _, err = cli(capsys, "ensemble", "--run", sampled, "--members", "2", "--no-progress")
    assert code == 0, err
    onnx_path = tmp_path / "ens.onnx"
    code, out, err = cli(capsys, "export", "--run", sampled, "--ensemble", "--out", onnx_path)
    assert code == 0, err
    folder = sampled / "export-ensemble"
    model = load_exported(folder)
    assert isinstance(model, EnsembleModel) and len(model.members) == 2
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        members = [load_exported(folder / f"member-{i}") for i in (1, 2)]
        mean = sum(0.5 * torch.softmax(m(images), 1) for m in members)
        got = model(images)
    torch.testing.assert_close(got.exp(), mean, rtol=1e-5, atol=1e-6)
    session = onnxruntime.InferenceSession(str(onnx_path))
    floats = (images.float() / 255).numpy()
    (onnx_out,) = session.run(None, {"images": floats})
    np.testing.assert_allclose(np.exp(onnx_out), mean.numpy(), rtol=1e-4, atol=1e-5)
    code, _, err = cli(capsys, "export", "--run", sampled, "--ensemble", "--format", "torchscript")
    one_line(code, err, "ONNX only")


def test_plot_draws_the_reliability_and_size_figures(sampled):
    from bayesnas.report import plot_run

    ensemble(EnsembleConfig(run=sampled, members=3, device="cpu", progress=False))
    index, _ = plot_run(sampled, None, "png")
    names = {p.name for p in index.parent.iterdir()}
    assert {"07-reliability.png", "08-ensemble-size.png"} <= names
    assert "Reliability" in index.read_text()
