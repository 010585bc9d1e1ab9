"""--capture: a compiled step equals the eager one in every phase, the flag is saved and kept on
resume (exactly), dynamic steps fall back with one note, and bad uses are one line (exit 2).

The compiled tests run inductor on the CPU. Its first compilation of these graphs takes tens of
seconds on a busy 2-core machine; later runs load them from inductor's on-disk cache (seconds).
All compiled tests use the same tiny network and batch, so they share the compiled graphs.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyro
import pytest
import torch
from fakedata import write_cifar
from helpers import run_cli

import bayesnas
from bayesnas.config import SearchConfig, build_config
from bayesnas.distributed import syncbn
from bayesnas.errors import UserError
from bayesnas.gates import GateLayout
from bayesnas.program import build_program
from bayesnas.search import PRUNED_LOGIT, Searcher, capture
from bayesnas.search.capture import StepCapture
from bayesnas.spaces.nb201.cell import CONV3, SKIP
from bayesnas.spaces.nb201.mixture import NO_ROWS

pytestmark = pytest.mark.usefixtures("one_thread_module")
BATCH = 8


@pytest.fixture(scope="module")
def fake_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fake CIFAR-10: 64 search-train images, 8 steps of 8 per epoch."""
    root = tmp_path_factory.mktemp("fake-cifar10")
    write_cifar(root, "cifar10", train=128, test=10)
    return root


def _config(root: Path, **changes: Any) -> SearchConfig:
    values: dict[str, Any] = dict(
        dataset="cifar10",
        data_root=str(root),
        space="nb201",
        space_options={"channels": 4, "cells": 1},
        batch_size=BATCH,
        val_size=32,
        eval_size=32,
        epochs=2,
        warmup=0.3,
        gate_lr=0.5,
        device="cpu",
        capture="compile",
    )
    return build_config(None, **(values | changes))


def _cli_args(root: Path, out: Path, *extra: str) -> list[str | Path]:
    return [
        "search", "--dataset", "cifar10", "--data-root", root, "--space", "nb201",
        "--channels", "4", "--cells", "1", "--batch-size", str(BATCH), "--val-size", "32",
        "--eval-size", "32", "--epochs", "2", "--warmup", "0.3", "--gate-lr", "0.5",
        "--seed", "3", "--device", "cpu", "--checkpoint-minutes", "0", "--no-progress",
        "--out", out, *extra,
    ]  # fmt: skip


def _step_from(searcher: Searcher, state: dict, batch, step: int, shared: bool) -> dict:
    """One search step from ``state`` (weights, momentum, random state); the state after it."""
    searcher.load_state_dict(copy.deepcopy(state))
    searcher.capture.refresh()  # q's support, as at an epoch start
    searcher._schedule(step)
    searcher.program.guide.shared_exact = shared
    searcher._step(*batch, step)
    return copy.deepcopy(searcher.state_dict())


def _assert_close_states(a: dict, b: dict) -> None:
    for part in ("model", "guide"):
        for name in a[part]:
            torch.testing.assert_close(a[part][name], b[part][name], atol=1e-5, rtol=1e-4)
    for key, buffers in a["optimizer"]["state"].items():
        torch.testing.assert_close(
            buffers["momentum_buffer"], b["optimizer"]["state"][key]["momentum_buffer"]
        )
    assert a["sums"]["loss"] == pytest.approx(b["sums"]["loss"], rel=1e-5)


def test_compiled_step_equals_the_eager_step_in_every_phase(
    fake_cifar10: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inductor on CPU against the same plan run eager, from the same state: warm-up draws per
    example and per batch, the first relaxed step, and a relaxed step after pruning (a new
    plan: a stale graph would compute the pruned ops)."""
    config = _config(fake_cifar10)
    compiled = Searcher(config, tmp_path / "a", progress=False)
    monkeypatch.setattr(capture, "compiled", lambda fn, mode: fn)
    eager = Searcher(config, tmp_path / "b", progress=False)
    batch = next(iter(compiled.train_data.train_batches(BATCH, 0, config.seed)))
    first = compiled.warmup_steps
    pyro.set_rng_seed(0)
    phases = ((0, True, False), (0, False, False), (first, False, False), (first + 1, False, True))
    for step, shared, prune in phases:
        if prune:
            with torch.no_grad():
                logits = compiled.program.guide.gate_logits
                logits[:3, SKIP] = logits[3:, CONV3] = PRUNED_LOGIT
        state = copy.deepcopy(compiled.state_dict())
        after = [_step_from(s, state, batch, step, shared) for s in (compiled, eager)]
        _assert_close_states(*after)
    assert compiled.capture.plan == eager.capture.plan
    assert compiled.capture.plan is not None
    assert compiled.capture.plan[0][SKIP] is NO_ROWS and compiled.capture.plan[4][CONV3] is NO_ROWS


def test_capture_is_saved_and_a_resume_keeps_it_exactly(
    fake_cifar10: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = run_cli(*_cli_args(fake_cifar10, tmp_path / "ref", "--capture", "compile"),
                        cwd=tmp_path)  # fmt: skip
    assert reference.returncode == 0, reference.stderr
    saved = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert saved["config"]["capture"] == "compile"

    agree = Searcher._agree  # stop after step 11 (epoch 2) as Ctrl-C would: checkpoint, exit 130

    def stop_at_11(self: Searcher, now: float) -> tuple[bool, bool]:
        stop, due = agree(self, now)
        return stop or self.global_step == 11, due

    monkeypatch.setattr(Searcher, "_agree", stop_at_11)
    run = tmp_path / "run"
    stopped = run_cli(*_cli_args(fake_cifar10, run, "--capture", "compile"), cwd=tmp_path)
    assert stopped.returncode == 130, stopped.stderr
    monkeypatch.undo()
    changed = run_cli("search", "--resume", run, "--capture", "none", cwd=tmp_path)
    assert changed.returncode == 2 and "--capture cannot change" in changed.stderr
    resumed = run_cli("search", "--resume", run, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (torch.load(d / "posterior.pt", weights_only=False) for d in (tmp_path / "ref", run))
    assert a["config"]["capture"] == b["config"]["capture"] == "compile"
    assert all(torch.equal(a["net"][k], b["net"][k]) for k in a["net"])
    assert torch.equal(a["gate_logits"], b["gate_logits"])


def test_steps_that_cannot_be_captured_run_eager_with_one_note() -> None:
    notes: list[str] = []
    program = build_program(SearchConfig(space_options={"channels": 4, "cells": 1}), 10, 3, 100)
    logits = program.guide.gate_logits
    step = StepCapture("compile", program.net, logits, torch.device("cpu"), notes.append)
    program.net.aux_skip = 0.5  # type: ignore[assignment]
    dynamic = SimpleNamespace(  # a space with neither a support plan nor channel gates
        space_name="other",
        layout=GateLayout("categorical", (2, 3)),
        forward=None,
        gated_sq_norms=None,
        ungated_sq_norm=None,
        modules=lambda: iter(()),
        support_plan=lambda gate_logits: None,  # SuperNet's defaults
        aux_skip=0.0,
        skip_dropout=0.0,
    )
    other = StepCapture("compile", dynamic, logits, torch.device("cpu"), notes.append)  # type: ignore[arg-type]
    synced_program = build_program(
        SearchConfig(space_options={"channels": 4, "cells": 1}), 10, 3, 9
    )
    synced_net = syncbn.convert(synced_program.net)
    synced = StepCapture("compile", synced_net, logits, torch.device("cpu"), notes.append)  # type: ignore[arg-type]
    for capture_step in (step, step, other, other, synced, synced):
        with capture_step.step() as captured:
            assert not captured
    assert notes == [
        "--capture compile: --aux-skip changes the network every step: those steps run eager",
        "--capture compile: space other decides its shapes from each batch: its steps run eager",
        "--capture compile: --sync-bn all-reduces BatchNorm statistics inside the forward: "
        "steps run eager",
    ]
    program.net.aux_skip = 0.0  # type: ignore[assignment]
    program.net.skip_dropout = 0.3  # type: ignore[assignment]
    with step.step() as captured:
        assert not captured
    assert notes[-1] == (
        "--capture compile: --skip-dropout changes the network every step: those steps run eager"
    )
    program.net.skip_dropout = 0.0  # type: ignore[assignment]
    with step.step() as captured:
        assert captured and program.net.fixed_plan is not None
    assert program.net.fixed_plan is None and "forward" not in vars(program.net)


def test_bad_capture_uses_are_one_line(tmp_path: Path, fake_cifar10: Path) -> None:
    result = run_cli(*_cli_args(fake_cifar10, tmp_path / "run", "--capture", "cuda-graphs"),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "bayesnas: error: --capture cuda-graphs needs a CUDA device: use --capture compile on CPU"
    ]
    assert not (tmp_path / "run").exists()
    result = run_cli(*_cli_args(fake_cifar10, tmp_path / "run", "--capture", "graphs"),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2 and "Invalid value for '--capture'" in result.stderr
    with pytest.raises(UserError, match="must be none, compile or cuda-graphs"):
        SearchConfig(capture="graphs").validated()
    program = build_program(SearchConfig(space_options={"channels": 4, "cells": 1}), 10, 3, 100)
    with pytest.raises(UserError, match="needs a CUDA device, and this search runs on cpu"):
        StepCapture("cuda-graphs", program.net, program.guide.gate_logits, torch.device("cpu"),
                    print)  # fmt: skip


# -- on a GPU --------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
def test_captured_cuda_step_reads_nothing_back_and_matches_eager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nb201 under cuda-graphs: no host read in the step (eager has one, tests/test_cuda.py),
    and the loss of the replayed graphs equals the same plan run eager (bf16 tolerance)."""
    config = SearchConfig(space_options={"channels": 8, "cells": 1}, device="cuda")
    program = build_program(config, 10, 3, 1000)
    program.elbo.to("cuda")
    program.net.to(memory_format=torch.channels_last)
    logits = program.guide.gate_logits
    graphs = StepCapture("cuda-graphs", program.net, logits, torch.device("cuda"), print)
    monkeypatch.setattr(capture, "compiled", lambda fn, mode: fn)
    eager = StepCapture("compile", program.net, logits, torch.device("cuda"), print)
    images = torch.randn(16, 3, 32, 32, device="cuda")
    labels = torch.randint(0, 10, (16,), device="cuda")

    def loss(step: StepCapture) -> torch.Tensor:
        pyro.set_rng_seed(0)
        with torch.autocast("cuda", torch.bfloat16), step.step():
            value = program.loss(images, labels)
        value.backward()
        return value.detach().clone()

    for _ in range(3):  # compile, record, replay
        loss(graphs)
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            replayed = loss(graphs)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    roots = (Path(bayesnas.__file__).parent, Path(pyro.__file__).parent)
    syncs = [
        f"{w.filename}:{w.lineno}"
        for w in caught
        if "synchroniz" in str(w.message)
        and any(Path(w.filename).is_relative_to(root) for root in roots)
    ]
    assert syncs == []
    torch.testing.assert_close(replayed, loss(eager), atol=0.05, rtol=0.02)


@needs_cuda
def test_search_with_cuda_graphs(tmp_path: Path, fake_cifar10: Path) -> None:
    result = run_cli(*_cli_args(fake_cifar10, tmp_path / "run", "--capture", "cuda-graphs",
                                "--device", "cuda"), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "posterior mode:" in result.stdout
