"""The zero-cost prior: deterministic evidence, the gate site's prior in the Pyro trace, the
tempered likelihood, and search + sample end to end on a small generated CIFAR-10."""

import json
from pathlib import Path

import pyro
import pytest
import torch
from fakedata import write_cifar
from helpers import run_cli
from pyro import poutine

from bayesnas.config import SearchConfig
from bayesnas.models import ARCH_SITE
from bayesnas.priors import zero_cost_evidence
from bayesnas.priors.proxies import naswot
from bayesnas.priors.removal import removal_evidence
from bayesnas.program import build_program
from bayesnas.spaces import create_space
from bayesnas.spaces.nb201.cell import EDGES, OPS

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _evidence(seed: int, batches: list[torch.Tensor]) -> torch.Tensor:
    def make_net():
        return create_space("nb201", channels=4, cells=1, num_classes=10)

    return removal_evidence(make_net, batches, naswot, repeats=2, seed=seed, show_progress=False)


def test_evidence_is_deterministic_for_a_seed_and_leaves_the_callers_random_state():
    torch.manual_seed(123)
    batches = [torch.randn(32, 3, 32, 32), torch.randn(32, 3, 32, 32)]
    state = torch.get_rng_state()
    first = _evidence(0, batches)
    assert torch.equal(torch.get_rng_state(), state)  # its own random stream
    assert torch.equal(first, _evidence(0, batches))
    assert not torch.equal(first, _evidence(1, batches))
    assert first.shape == (len(EDGES), len(OPS))
    # per initialisation each edge's z-scores have mean 0, so their average has too
    assert torch.allclose(first.sum(-1), torch.zeros(len(EDGES)), atol=1e-5)


def test_removed_ops_count_as_zero_input_codes():
    """A removed conv still contributes the constant code of a zeroed input, as the reference
    code runs it: removing it changes the kernel, not the number of codes."""
    torch.manual_seed(0)
    net = create_space("nb201", channels=4, cells=1, num_classes=10).eval()
    images = torch.randn(16, 3, 32, 32)
    full = torch.full((16, len(EDGES), len(OPS)), 1 / len(OPS))
    removed = full.clone()
    removed[:, 0, OPS.index("nor_conv_3x3")] = 0
    whole = naswot(lambda x: net(x, full), net, images, True)
    without = naswot(lambda x: net(x, removed), net, images, True)
    as_absent = naswot(lambda x: net(x, removed), net, images, False)
    assert whole != without
    assert as_absent < without  # a constant code still adds a positive definite part


def _program(prior: torch.Tensor | None, temperature: float = 1.0):
    config = SearchConfig(
        space="nb201", space_options={"channels": 4, "cells": 1}, likelihood_temperature=temperature
    ).validated()
    torch.manual_seed(0)
    return build_program(config, 10, 3, num_data=1000, evidence_logits=prior)


def test_gate_site_prior_is_the_stored_logits_log_softmax():
    prior = torch.randn(len(EDGES), len(OPS)) * 2
    program = _program(prior)
    images, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    guide_trace = poutine.trace(program.guide).get_trace(images, labels)
    trace = poutine.trace(poutine.replay(program.model, trace=guide_trace)).get_trace(
        images, labels
    )
    site = trace.nodes[ARCH_SITE]
    value = site["value"]
    chosen = torch.nn.functional.one_hot(value.argmax(-1), len(OPS))  # a relaxed draw's op
    expected = (chosen * torch.log_softmax(prior, -1)).sum((-1, -2))
    assert torch.allclose(site["fn"].log_prob(value), expected, atol=1e-5)
    assert torch.equal(program.guide.gate_logits.detach(), prior)  # q starts at the prior


def test_likelihood_temperature_scales_the_architecture_kl_only():
    prior = torch.randn(len(EDGES), len(OPS))
    images, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    losses = {}
    for temperature in (1.0, 10.0):
        program = _program(prior, temperature)
        with torch.no_grad():
            program.guide.gate_logits.add_(torch.randn_like(prior))  # q away from the prior
        program.elbo.double()
        pyro.set_rng_seed(0)
        loss = program.loss(images.double(), labels)
        kl = float(program.kl().detach())
        losses[temperature] = (float(loss.detach()), kl, program.model.num_data)
    (cold, kl, n), (warm, kl_again, _) = losses[10.0], losses[1.0]
    assert kl == pytest.approx(kl_again)
    assert cold - warm == pytest.approx(9.0 * kl / n, rel=1e-6)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, "cifar10", train=384, test=10)
    return root


def test_zero_cost_search_then_sample_end_to_end(cifar_root, tmp_path):
    run = tmp_path / "run"
    common = ["--dataset", "cifar10", "--data-root", cifar_root, "--space", "nb201"]
    tiny = ["--channels", "4", "--cells", "1", "--batch-size", "32", "--train-size", "192"]
    prior = ["--arch-prior", "zero-cost", "--prior-repeats", "2", "--prior-batch", "32"]
    searched = run_cli(
        "search", *common, *tiny, *prior, "--epochs", "1", "--val-size", "64", "--out", run,
        cwd=tmp_path,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    saved = json.loads((run / "config.json").read_text())
    assert saved["arch_prior"]["name"] == "zero-cost"
    logits = torch.tensor(saved["arch_prior"]["logits"])
    assert logits.shape == (len(EDGES), len(OPS)) and logits.abs().sum() > 0
    for score in ("zero-cost", "combined", "log-prior"):
        sampled = run_cli(
            "sample", "--run", run, "--n", "6", "--score", score, "--top-k", "1", cwd=tmp_path
        )
        assert sampled.returncode == 0, sampled.stderr
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    for score in ("zero-cost", "combined", "log-prior"):
        mine = [r for r in rows if r["score_by"] == score]
        assert [r["rank"] for r in mine] == list(range(1, len(mine) + 1))
        scores = [r["score"] for r in mine]
        assert scores == sorted(scores, reverse=True)  # ranked by the chosen score
    assert (run / "export" / "rank-1").is_dir()
    default = run_cli("sample", "--run", run, "--n", "4", "--top-k", "0", cwd=tmp_path)
    assert "ranked by log-q" in default.stdout  # q holds prior and likelihood: rank by it


def test_prior_only_search_keeps_q_at_the_prior(cifar_root, tmp_path):
    run = tmp_path / "run"
    searched = run_cli(
        "search", "--dataset", "cifar10", "--data-root", cifar_root, "--channels", "4",
        "--cells", "1", "--train-size", "192", "--val-size", "64", "--batch-size", "32",
        "--arch-prior", "zero-cost", "--prior-repeats", "1", "--prior-batch", "32",
        "--prior-strength", "2", "--epochs", "0", "--out", run, cwd=tmp_path,
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    payload = torch.load(run / "posterior.pt", weights_only=True)
    assert torch.equal(payload["gate_logits"], payload["arch_prior_logits"])
    sampled = run_cli("sample", "--run", run, "--n", "4", "--top-k", "1", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr
    assert "ranked by zero-cost" in sampled.stdout  # untrained weights: not by their accuracy
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {r["score_by"] for r in rows} == {"zero-cost"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prior-strength", "-1"], "--prior-strength"),
        (["--prior-strength", "nan"], "prior-strength"),
        (["--likelihood-temperature", "0.5"], "--likelihood-temperature"),
        (["--space", "resnet", "--arch-prior", "zero-cost"], "arch-prior"),
        (["--space", "resnet", "--prior-cells", "5"], "--prior-cells"),
        (["--prior-cells", "0"], "--prior-cells"),
    ],
)
def test_bad_prior_options_are_one_line_exit_2(tmp_path, args, needle):
    result = run_cli("search", "--dataset", "cifar10", *args, "--out", tmp_path / "r", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_zero_cost_evidence_refuses_a_batch_larger_than_the_split(cifar_root):
    from bayesnas.data import search_data
    from bayesnas.errors import UserError

    config = SearchConfig(
        dataset="cifar10", data_root=str(cifar_root), space_options={"channels": 4, "cells": 1},
        train_size=64, arch_prior="zero-cost", prior_batch=128,
    ).validated()  # fmt: skip
    train, _, info, _ = search_data(config, torch.device("cpu"))
    with pytest.raises(UserError, match="--prior-batch"):
        zero_cost_evidence(config, train, info, torch.device("cpu"), False)


def test_prior_cells_sets_the_depth_of_the_evidence_networks_only():
    from bayesnas.priors import fresh_network

    config = SearchConfig(space_options={"channels": 4, "cells": 1}, prior_cells=3).validated()
    deep = fresh_network(config, 10, 3, torch.device("cpu"))
    searched = build_program(config, 10, 3, num_data=100).net
    assert deep.config["cells"] == 3 and searched.config["cells"] == 1
    assert deep.layout == searched.layout  # the same gates: the evidence fits the search's q
