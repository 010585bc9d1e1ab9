"""Figure 2b, the architecture prior beside the posterior: its data by hand, the figure drawn
from the stored logits of tiny real zero-cost runs, and no figure for runs without a prior."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle

from bayesnas import rundir
from bayesnas.config import build_config
from bayesnas.report import figures as plots
from bayesnas.report import load_run, make_figures, plot_run
from bayesnas.search import run_search

FMNIST = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
PRIOR_FIGURE = "02-prior-posterior"
BEFORE = ["01-training", "02-posterior", "03-entropy", "06-architecture"]  # no samples
WITH_PRIOR = ["01-training", "02-posterior", PRIOR_FIGURE, "03-entropy", "06-architecture"]
RUNS = {  # name: (--arch-prior, --epochs)
    "zero-cost": ("zero-cost", 1),
    "zero-cost-0": ("zero-cost", 0),
    "uniform": ("uniform", 1),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, one_thread_module: None) -> dict[str, Path]:
    """A finished tiny nb201 run per entry of RUNS (gate_lr 1, so that one epoch moves q)."""
    if not FMNIST.is_file():
        pytest.skip("Debian's Fashion-MNIST absent")
    made = {}
    for name, (prior, epochs) in RUNS.items():
        config = build_config(
            None,
            dataset="fashion-mnist",
            space="nb201",
            space_options={"channels": 2, "cells": 1},
            epochs=epochs,
            batch_size=64,
            train_size=256,
            val_size=256,
            eval_size=256,
            gate_lr=1.0,
            arch_prior=prior,
            prior_repeats=1,
            prior_batch=64,
            device="cpu",
        )
        made[name] = tmp_path_factory.mktemp(name) / "run"
        run_search(config, made[name], progress=False)
    return made


def _copy(run: Path, dst: Path, names: tuple[str, ...]) -> Path:
    dst.mkdir(parents=True)
    for name in names:
        shutil.copy(run / name, dst / name)
    return dst


def _stems(run: Path, out: Path) -> tuple[list[str], list[str]]:
    figures, notes = make_figures(run, out)
    return [f.path.stem for f in figures], notes


def test_prior_and_posterior_probabilities_and_kl_by_hand():
    prior = np.array([[0.0, math.log(2), math.log(3)], [1.0, 1.0, 2.0], [1000.0, 0.0, 0.0]])
    gate = np.array([[math.log(3), math.log(2), 0.0], [0.0, 0.0, 0.0], [1000.0, 0.0, 0.0]])
    p, q, kl = plots.prior_posterior(prior, gate)
    e = math.e
    np.testing.assert_allclose(p[0], [1 / 6, 2 / 6, 3 / 6])
    np.testing.assert_allclose(q[0], [3 / 6, 2 / 6, 1 / 6])
    np.testing.assert_allclose(p[1], [1 / (2 + e), 1 / (2 + e), e / (2 + e)])
    np.testing.assert_allclose(q[1], [1 / 3] * 3)
    np.testing.assert_allclose(p[2], [1, 0, 0], atol=1e-300)  # no overflow at large logits
    expected = [
        0.5 * math.log(3) + 0 + (1 / 6) * math.log(1 / 3),  # sum q ln(q / p)
        -math.log(3) - 1 / 3 + math.log(2 + e),
        0.0,
    ]
    np.testing.assert_allclose(kl, expected, atol=1e-12)


def test_the_figure_draws_softmax_of_the_stored_logits(runs):
    run = load_run(runs["zero-cost"])
    stored = rundir.load_torch(runs["zero-cost"] / "posterior.pt", "posterior")
    prior_logits, gate_logits = stored["arch_prior_logits"], stored["gate_logits"]
    assert prior_logits.shape == gate_logits.shape == (6, 5)
    logits = run.prior_posterior_logits
    assert logits is not None
    np.testing.assert_array_equal(logits[0], prior_logits.double().numpy())
    np.testing.assert_array_equal(logits[1], gate_logits.double().numpy())
    fig = plots.prior_posterior_figure(run.gates, *logits, "zero-cost (naswot)", "after 1 epoch")
    prior_ax, q_ax, kl_ax, colorbar = fig.axes
    assert colorbar.get_label() == "<colorbar>"  # one colour bar for both heatmaps
    p = torch.softmax(prior_logits.double(), -1).numpy()
    q = torch.softmax(gate_logits.double(), -1).numpy()
    for ax, probs in ((prior_ax, p), (q_ax, q)):
        (image,) = ax.images
        assert image.get_clim() == (0, 1)
        np.testing.assert_allclose(image.get_array(), probs, atol=1e-12)
        framed = [round(r.get_x() + 0.45) for r in ax.patches if isinstance(r, Rectangle)]
        assert framed == list(probs.argmax(1))  # each row's top op
    np.testing.assert_allclose(q, plots.op_matrix(run.gates)[2], atol=1e-6)  # figure 2's q
    assert np.abs(q - p).max() > 1e-3  # gate_lr 1 moved q off the prior
    kl = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=gate_logits.double()),
        torch.distributions.Categorical(logits=prior_logits.double()),
    )
    np.testing.assert_allclose([bar.get_width() for bar in kl_ax.patches], kl, rtol=1e-9)
    assert "zero-cost (naswot)" in prior_ax.get_title() and "Prior" in prior_ax.get_title()
    assert "Posterior" in q_ax.get_title() and "after 1 epoch" in q_ax.get_title()
    heatmap = plots.cell_posterior_figure(run.metrics, run.gates, run.when).axes[0]
    for ax in (prior_ax, q_ax):  # figure 2's op order and edge labels
        for ticks in ("get_xticklabels", "get_yticklabels"):
            labels = [t.get_text() for t in getattr(ax, ticks)()]
            assert labels and labels == [t.get_text() for t in getattr(heatmap, ticks)()]


def test_plot_writes_it_for_a_zero_cost_run(runs):
    index, notes = plot_run(runs["zero-cost"], None, "png")
    data = (index.parent / f"{PRIOR_FIGURE}.png").read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000
    page = index.read_text()
    assert f'src="{PRIOR_FIGURE}.png"' in page and "Architecture prior vs posterior" in page
    assert "zero-cost (naswot, strength 1) prior from training-free evidence" in page
    assert "posterior after 1 epoch of SVI" in page and "--cost" not in page
    assert not any("prior" in n for n in notes)


def test_after_0_epochs_q_is_the_prior(runs, tmp_path):
    run = load_run(runs["zero-cost-0"])
    assert run.prior_posterior_logits is not None
    p, q, kl = plots.prior_posterior(*run.prior_posterior_logits)
    np.testing.assert_allclose(q, p, atol=1e-12)
    np.testing.assert_allclose(kl, 0, atol=1e-12)
    stems, _ = _stems(runs["zero-cost-0"], tmp_path / "out")
    assert stems == ["02-posterior", PRIOR_FIGURE, "06-architecture"]


def test_a_uniform_prior_run_gets_what_it_got_before(runs, tmp_path):
    payload = rundir.load_torch(runs["uniform"] / "posterior.pt", "posterior")
    assert payload["arch_prior_logits"] is None
    assert load_run(runs["uniform"]).prior_posterior_logits is None
    stems, notes = _stems(runs["uniform"], tmp_path / "out")
    assert stems == BEFORE and not any("prior" in n for n in notes)
    assert not (tmp_path / "out" / f"{PRIOR_FIGURE}.png").exists()


@pytest.mark.parametrize("case", ["flat", "before-priors"])
def test_no_figure_for_a_flat_prior_or_a_posterior_from_before_priors(runs, tmp_path, case):
    run = _copy(runs["zero-cost"], tmp_path / "run", ("config.json", "metrics.jsonl"))
    payload = rundir.load_torch(runs["zero-cost"] / "posterior.pt", "posterior")
    if case == "flat":
        payload["arch_prior_logits"] = torch.zeros(6, 5)  # --prior-strength 0
    else:
        del payload["arch_prior_logits"]
    torch.save(payload, run / "posterior.pt")
    stems, _ = _stems(run, tmp_path / "out")
    assert stems == BEFORE


def test_a_cost_term_the_figure_leaves_out_is_named(runs, tmp_path):
    names = ("config.json", "metrics.jsonl", "posterior.pt")
    run = _copy(runs["zero-cost"], tmp_path / "run", names)
    saved = json.loads((run / "config.json").read_text())
    saved["config"] |= {"cost": "flops", "cost_weight": 0.5}
    (run / "config.json").write_text(json.dumps(saved))
    figures, _ = make_figures(run, tmp_path / "out")
    assert [f.path.stem for f in figures] == WITH_PRIOR
    assert figures[2].caption.endswith("(p leaves out the search prior's --cost flops term)")


def test_a_running_zero_cost_run_gets_a_note_and_no_figure_yet(runs, tmp_path):
    run = _copy(runs["zero-cost"], tmp_path / "run", ("config.json", "metrics.jsonl"))
    stems, notes = _stems(run, tmp_path / "out")
    assert stems == BEFORE
    assert any("prior vs posterior figure comes with posterior.pt" in n for n in notes)
