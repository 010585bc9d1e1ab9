"""Posterior diagnostics: every figure from tiny real runs, the data behind them, index.html,
runs without samples or still running, damaged metrics, bad formats."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bayesnas import rundir
from bayesnas.config import build_config
from bayesnas.errors import UserError
from bayesnas.report import figures as plots
from bayesnas.report import (
    latest_calls,
    load_run,
    make_figures,
    plot_run,
    summary,
    summary_text,
    write_index,
)
from bayesnas.search import run_search
from bayesnas.selection.sample import SampleConfig, sample
from bayesnas.spaces import create_space
from bayesnas.spaces.nb201.cell import EDGES, OPS, edges_of, from_string

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
SPACES = {"nb201": {"channels": 2, "cells": 1}, "resnet": {"width": 2, "blocks": 1}}
ALL_FIGURES = [
    "01-training",
    "02-posterior",
    "03-entropy",
    "04-samples",
    "05-cost",
    "06-architecture",
]
NO_SAMPLE_FIGURES = ["01-training", "02-posterior", "03-entropy", "06-architecture"]


def _search_and_sample(run_dir: Path, space: str) -> None:
    config = build_config(
        None,
        dataset="fashion-mnist",
        space=space,
        space_options=SPACES[space],
        epochs=2,
        batch_size=64,
        train_size=256,
        val_size=256,
        eval_size=256,
        gate_lr=1.0,
        device="cpu",
    )
    run_search(config, run_dir, progress=False)
    calls = [("posterior", 0), ("uniform", 0)]
    calls += [("posterior", 1)] if space == "nb201" else [("fixed-dropout", 0)]
    for sampler, seed in calls:
        sample(
            SampleConfig(
                run=run_dir,
                n=12,
                top_k=0,
                sampler=sampler,
                seed=seed,
                drop_rate=0.3 if sampler == "fixed-dropout" else None,
                device="cpu",
                progress=False,
            )
        )


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished, sampled tiny run per space (nb201 has two posterior sample calls)."""
    if not FMNIST.is_file():
        pytest.skip("Debian's Fashion-MNIST absent")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        made = {}
        for space in SPACES:
            made[space] = tmp_path_factory.mktemp(space) / "run"
            _search_and_sample(made[space], space)
        return made
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def plotted(runs: dict[str, Path]) -> dict[str, tuple[Path, list[str]]]:
    """plot_run on each finished run with its defaults (RUN/plots, png)."""
    return {space: plot_run(run, None, "png") for space, run in runs.items()}


def _copy(run: Path, dst: Path, names: tuple[str, ...]) -> Path:
    dst.mkdir(parents=True)
    for name in names:
        shutil.copy(run / name, dst / name)
    return dst


def _stems(figures) -> list[str]:
    return [f.path.stem for f in figures]


def _references(index: Path) -> list[str]:
    return re.findall(r'(?:src|href|data)="([^"]+)"', index.read_text())


@pytest.mark.parametrize("space", SPACES)
def test_every_figure_of_a_finished_run(plotted, runs, space):
    index, notes = plotted[space]
    assert index == runs[space] / "plots" / "index.html"
    for stem in ALL_FIGURES:
        data = (index.parent / f"{stem}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000
    assert not any("no samples" in n or "not finished" in n for n in notes)
    refs = _references(index)
    assert sorted(set(refs)) == sorted(f"{s}.png" for s in ALL_FIGURES)


def test_heatmap_rows_sum_to_one_and_match_the_posterior(runs):
    run = load_run(runs["nb201"])
    edges, ops, probs = plots.op_matrix(run.gates)
    assert edges == [f"{to}<-{src}" for to, src in EDGES] and ops == list(OPS)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    expected = torch.softmax(run.posterior["gate_logits"], -1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    history = plots.op_history(run.metrics)
    assert history.shape == (2, 6, 5)
    np.testing.assert_allclose(history[-1], probs, atol=1e-6)  # the last epoch is the end
    assert np.abs(history[-1] - 0.2).max() > 1e-3  # gate_lr 1 moved the posterior
    entropy = plots.entropy_history(run.metrics)[-1]
    np.testing.assert_allclose(entropy, -(probs * np.log(probs)).sum(1), rtol=1e-5)


@pytest.mark.parametrize("space", SPACES)
def test_best_of_k_curves_are_the_sample_calls(runs, space):
    calls, earlier = latest_calls(load_run(runs[space]).samples)
    samplers = ["posterior", "uniform"] + ([] if space == "nb201" else ["fixed-dropout"])
    assert list(calls) == samplers and earlier == (1 if space == "nb201" else 0)
    if space == "nb201":
        assert calls["posterior"][0]["seed"] == 1  # the latest call, not the first
    for sampler, rows in calls.items():
        curve = plots.best_of_k(rows)
        assert len(curve) == 12 and np.all(np.diff(curve) >= 0)
        assert curve[-1] == max(r["val_acc"] for r in rows)
        written = json.loads((runs[space] / f"best_of_k-{sampler}.json").read_text())
        np.testing.assert_allclose(curve, written["curve"])


def test_drop_fractions_agree_with_the_space():
    net = create_space("resnet", width=2, blocks=1)
    logits = torch.tensor([2.0, -1.0, 1.5, 0.5, -0.5, 3.0, 0.2, 1.0, 2.0, -2.0, 0.1, 0.3])
    gates = net.gate_statistics(logits)
    fractions = plots.drop_fractions(gates)
    assert fractions["channels_expected"] == pytest.approx(gates["expected_channels_dropped"])
    mode = net.mode(logits)
    widths = net.figure_widths(mode)
    assert fractions["branches_mode"] == np.mean([w["kept_mid"] == 0 for w in widths]) == 0.5
    assert fractions["channels_mode"] == pytest.approx(1 - float(mode.mean()))
    torch.manual_seed(0)
    keep = torch.sigmoid(net.layout.expand_logits(logits))
    draws = torch.bernoulli(keep.expand(2000, -1))
    removed = [np.mean([w["kept_mid"] == 0 for w in net.figure_widths(d)]) for d in draws]
    assert fractions["branches_expected"] == pytest.approx(np.mean(removed), abs=0.03)


def test_architecture_data_is_the_top_candidate(runs):
    calls, _ = latest_calls(load_run(runs["resnet"]).samples)
    best = max((r for rows in calls.values() for r in rows), key=lambda r: r["val_acc"])
    net = create_space("resnet", **SPACES["resnet"])
    widths = net.figure_widths(net.decode(best["encoding"]))
    described = re.findall(r"(\d+|-)", re.sub(r"s\d: ", "", best["architecture"]))
    assert [str(w["kept_mid"] or "-") for w in widths] == described
    assert all(w["full_mid"] == 2 * 2 ** (int(w["block"][1]) - 1) for w in widths)
    mode = load_run(runs["nb201"]).posterior["mode"]
    edges = edges_of(mode)
    assert [(s, t) for s, t, _ in edges] == [(s, t) for t, s in EDGES]
    assert tuple(OPS.index(op) for _, _, op in edges) == from_string(mode)


def test_a_run_without_samples_gets_figures_1_to_3_and_6(runs, tmp_path):
    run = _copy(runs["resnet"], tmp_path / "run", ("config.json", "metrics.jsonl", "posterior.pt"))
    figures, notes = make_figures(run, tmp_path / "out", "svg")
    assert _stems(figures) == NO_SAMPLE_FIGURES
    assert all(f.path.suffix == ".svg" and f.path.is_file() for f in figures)
    assert any("no samples.jsonl" in n and "bayesnas sample" in n for n in notes)
    assert "posterior mode" in figures[-1].caption


def test_a_running_run_gets_figures_from_its_metrics(runs, tmp_path):
    run = _copy(runs["nb201"], tmp_path / "run", ("config.json", "metrics.jsonl"))
    first = (run / "metrics.jsonl").read_text().splitlines()[0]
    (run / "metrics.jsonl").write_text(first + "\n")
    figures, notes = make_figures(run, tmp_path / "out")
    assert _stems(figures) == NO_SAMPLE_FIGURES
    assert any("not finished" in n for n in notes)
    info = summary(run)
    assert not info["finished"] and (info["epochs_done"], info["epochs_planned"]) == (1, 2)
    assert info["mode"] == json.loads(first)["gates"]["mode"] and info["best"] is None
    assert "1 / 2 (not finished)" in summary_text(run)


def test_a_run_that_has_not_finished_an_epoch_gets_notes_only(runs, tmp_path):
    run = _copy(runs["resnet"], tmp_path / "run", ("config.json",))
    figures, notes = make_figures(run, tmp_path / "out")
    assert figures == [] and any("no epoch finished" in n for n in notes)
    index = write_index(run, tmp_path / "out", figures, notes)
    assert _references(index) == [] and "no epoch finished" in index.read_text()


def test_index_references_only_files_that_exist(runs, tmp_path):
    run = _copy(runs["nb201"], tmp_path / "run", ("config.json", "metrics.jsonl", "posterior.pt"))
    out = tmp_path / "plots with space"
    figures, notes = make_figures(run, out, "pdf")
    figures[1].path.unlink()
    index = write_index(run, out, figures, notes)
    refs = _references(index)
    assert refs and all((out / ref.replace("%20", " ")).is_file() for ref in refs)
    assert "02-posterior.pdf" not in refs and "03-entropy.pdf" in refs


def test_summary_of_a_finished_run(runs):
    info = summary(runs["resnet"])
    payload = rundir.load_torch(runs["resnet"] / "posterior.pt", "posterior")
    assert info["finished"] and (info["epochs_done"], info["epochs_planned"]) == (2, 2)
    assert info["mode_val_acc"] == payload["mode_val_acc"] and info["mode"] == payload["mode"]
    calls, _ = latest_calls(load_run(runs["resnet"]).samples)
    assert info["best"]["val_acc"] == max(r["val_acc"] for rows in calls.values() for r in rows)
    text = summary_text(runs["resnet"])
    assert "fashion-mnist (256 train / 256 validation images)" in text
    assert "2 / 2 (finished)" in text and f"{info['best']['val_acc']:.2%}" in text


def test_a_truncated_last_metrics_line_is_skipped_with_a_note(runs, tmp_path):
    run = _copy(runs["nb201"], tmp_path / "run", ("config.json", "metrics.jsonl"))
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "step": 12, "elbo"')
    loaded = load_run(run)
    assert len(loaded.metrics) == 2
    assert any("truncated last line" in n for n in loaded.notes)
    assert "truncated last line" in summary_text(run)


@pytest.mark.parametrize("name", ["metrics.jsonl", "samples.jsonl"])
def test_a_bad_line_in_the_middle_is_a_user_error(runs, tmp_path, name):
    run = _copy(runs["nb201"], tmp_path / "run", ("config.json", "metrics.jsonl", "samples.jsonl"))
    lines = (run / name).read_text().splitlines()
    (run / name).write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    with pytest.raises(UserError, match="line 2 is not JSON"):
        make_figures(run, tmp_path / "out")


def test_unknown_format_and_missing_run_are_user_errors(runs, tmp_path):
    with pytest.raises(UserError, match="png, svg, pdf"):
        make_figures(runs["nb201"], tmp_path / "out", "jpeg")
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="not a bayesnas run"):
        plot_run(tmp_path, None, "png")
