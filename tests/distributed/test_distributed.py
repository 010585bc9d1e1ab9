"""Data-parallel search and sampling on CPU with 2 Gloo processes: one q on every rank, the
2-process loss and gradients equal the 1-process ones (--sync-bn), exact resume under torchrun
after SIGKILL of the whole job, sampling equal to one process, and a world-size mismatch on
resume as one line."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from fakedata import write_cifar
from helpers import cli_env

from bayesnas.config import SearchConfig
from bayesnas.selection.sample import SampleConfig, sample

TIMEOUT = 300  # seconds for one job; only a hang gets near it
EPOCHS = 3
pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def fake_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fake CIFAR-10: 192 search-train images, 6 global batches of 32 (16 per rank)."""
    root = tmp_path_factory.mktemp("fake-cifar10")
    write_cifar(root, "cifar10", train=384, test=10)
    return root


def search_args(data_root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "search", "--dataset", "cifar10", "--data-root", str(data_root), "--space", "nb201",
        "--channels", "4", "--cells", "1", "--batch-size", "32", "--val-size", "64",
        "--eval-size", "64", "--epochs", str(EPOCHS), "--seed", "3", "--warmup", "0.3",
        "--gate-lr", "0.5", "--device", "cpu", "--checkpoint-minutes", "0", "--no-progress",
        "--out", str(out), *extra,
    ]  # fmt: skip


def torchrun(
    *args: str | Path, cwd: Path, logs: Path | None = None, **popen: Any
) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node 2 -m bayesnas -- ARGS`` in ``cwd`` (the ``--``
    keeps torchrun from reading flags such as --run or --n as abbreviations of its own); with
    ``logs``, each rank's stdout and stderr go to files there, apart from torchrun's own."""
    own = ["--log-dir", str(logs), "--redirects", "3"] if logs else []
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", *own,
               "--nproc-per-node", "2", "-m", "bayesnas", "--", *map(str, args)]  # fmt: skip
    env = {**os.environ, **cli_env(cwd)}
    return subprocess.Popen(command, cwd=cwd, env=env, text=True, **popen)


def finished(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, out


def assert_ok(proc: subprocess.Popen) -> str:
    code, out = finished(proc)
    assert code == 0, out
    return out


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, fake_cifar10: Path) -> Path:
    """An uninterrupted 2-process search (BatchNorm per rank): every other run must match it."""
    base = tmp_path_factory.mktemp("reference")
    proc = torchrun(*search_args(fake_cifar10, base / "run"), cwd=base,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    out = assert_ok(proc)
    assert out.count("posterior written to") == 1  # rank 0 alone reports
    return base / "run"


def test_torchrun_search_writes_one_run_directory(reference: Path) -> None:
    saved = json.loads((reference / "config.json").read_text())
    assert saved["parallel"]["world_size"] == 2 and saved["parallel"]["global_batch"] == 32
    assert saved["parallel"]["batch_per_rank"] == 16
    rows = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["images_per_s"] * r["seconds"] == pytest.approx(192) for r in rows)
    state = load(reference / "checkpoint.pt")
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    rngs = [r["rng"]["pyro"]["torch"] for r in state["ranks"]]
    assert not torch.equal(rngs[0], rngs[1])  # each rank's own gate noise and augmentation
    assert load(reference / "posterior.pt")["world_size"] == 2


# -- the ranks compute what one process computes -----------------------------------------------


def _config(data_root: Path) -> SearchConfig:
    return SearchConfig(
        dataset="cifar10", data_root=str(data_root), space_options={"channels": 4, "cells": 1},
        epochs=2, batch_size=32, val_size=64, eval_size=64, seed=5, device="cpu", gate_lr=0.5,
        tau=1.0, sync_bn=True, checkpoint_minutes=1e9,
    ).validated()  # fmt: skip


def _fixed_gumbel(noise: torch.Tensor):
    """F.gumbel_softmax with given Gumbel noise: the same draws in one process and in two."""

    def gumbel_softmax(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
        return ((logits + noise) / tau).softmax(dim)

    return gumbel_softmax


def _global_batch(searcher) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    images, labels = next(searcher.train_data.eval_batches(32))
    noise = -torch.empty(32, 6, 5).exponential_(generator=torch.Generator().manual_seed(1)).log()
    return images, labels, noise


def _one_step(searcher, images, labels, noise) -> dict[str, Any]:
    """One relaxed SVI step with given noise: the loss, the gradients, the parameters after."""
    real = torch.nn.functional.gumbel_softmax
    torch.nn.functional.gumbel_softmax = _fixed_gumbel(noise)
    try:
        searcher._schedule(searcher.warmup_steps)
        searcher._step(images, labels, searcher.warmup_steps)
    finally:
        torch.nn.functional.gumbel_softmax = real
    named = dict(searcher.program.elbo.named_parameters())
    return {
        "loss": float(searcher.sums["loss"]),
        "images": float(searcher.sums["images"]),
        "grads": {k: p.grad.clone() for k, p in named.items() if p.grad is not None},
        "params": {k: p.detach().clone() for k, p in named.items()},
    }


def _rank(rank: int, port: int, data_root: Path, out: Path) -> None:
    """One rank: the shared step on its half of the batch, then a whole 2-epoch search."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    from bayesnas.search import Searcher

    run = out / "run"
    run.mkdir(exist_ok=True)
    searcher = Searcher(_config(data_root), run, progress=False)
    images, labels, noise = _global_batch(searcher)
    part = slice(16 * rank, 16 * (rank + 1))
    step = _one_step(searcher, images[part], labels[part], noise[part])
    searcher.epoch = searcher.step_in_epoch = 0
    searcher.sums = {k: torch.zeros_like(v) for k, v in searcher.sums.items()}
    searcher.run()
    state = {k: v.clone() for k, v in searcher.program.elbo.state_dict().items()}
    torch.save({"step": step, "state": state}, out / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_compute_one_process_step_and_hold_one_q(
    tmp_path: Path, fake_cifar10: Path, isolated_data_env: Path
) -> None:
    from bayesnas.search import Searcher

    single = Searcher(_config(fake_cifar10).with_updates(sync_bn=False), tmp_path, progress=False)
    one = _one_step(single, *_global_batch(single))
    mp.spawn(_rank, args=(_free_port(), fake_cifar10, tmp_path), nprocs=2, join=True)
    ranks = [load(tmp_path / f"rank{r}.pt") for r in (0, 1)]

    for two in (ranks[0]["step"], ranks[1]["step"]):
        assert two["images"] == one["images"] == 32
        assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
        assert two["grads"].keys() == one["grads"].keys()
        for name, grad in one["grads"].items():
            torch.testing.assert_close(two["grads"][name], grad, rtol=1e-4, atol=1e-6, msg=name)
        for name, param in one["params"].items():
            torch.testing.assert_close(two["params"][name], param, rtol=1e-4, atol=1e-6, msg=name)
    a, b = (r["state"] for r in ranks)  # after a whole search: one q, one network, bit for bit
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert torch.equal(a["guide.gate_logits"], b["guide.gate_logits"])


# -- resume and sampling under torchrun ----------------------------------------------------------


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen) -> dict[str, Any]:
    """Poll checkpoint.pt (written atomically) until it is mid-run, after the first epoch."""
    path, seen, deadline = run / "checkpoint.pt", None, time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the job ended before it could be killed mid-run"
        stamp = path.stat().st_mtime_ns if path.is_file() else None
        if stamp is not None and stamp != seen:
            seen, state = stamp, load(path)
            if state["epoch"] >= 1 and state["step_in_epoch"] >= 1:
                return state
        time.sleep(0.02)  # polling interval on file state, not a synchronisation delay
    pytest.fail("no mid-run checkpoint")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts each rank in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie has already closed its files and locks)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _wait_unlocked(run: Path) -> None:
    """Wait until no process holds the run's lock (a killed rank's descendants may outlive the
    pids we saw), as a user resuming after a crash finds it free."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        with open(run / ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                time.sleep(0.05)
                continue
            fcntl.flock(handle, fcntl.LOCK_UN)
            return


def _kill_job(proc: subprocess.Popen) -> None:
    """SIGKILL torchrun and every rank at once, as a node failure or `kill -9` of the job."""
    job = [proc.pid, *_descendants(proc.pid)]
    for pid in job:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=TIMEOUT)
    deadline = time.monotonic() + TIMEOUT
    while not all(_gone(pid) for pid in job) and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the process table, not a synchronisation delay


def test_resume_under_torchrun_after_sigkill_is_exact(
    tmp_path: Path, fake_cifar10: Path, reference: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    proc = torchrun(*search_args(fake_cifar10, run), cwd=tmp_path,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        state = _wait_for_checkpoint(run, proc)
    finally:
        _kill_job(proc)
    _wait_unlocked(run)
    assert state["epoch"] < EPOCHS and not (run / "posterior.pt").exists()

    from bayesnas.cli import main  # one process cannot resume a 2-process run: one line, exit 2

    with pytest.raises(SystemExit) as exit_:
        main(["search", "--resume", str(run), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    assert "written by 2 process(es)" in err[0] and "runs 1" in err[0]

    out = assert_ok(torchrun("search", "--resume", run, "--no-progress", cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT))  # fmt: skip
    assert "posterior written" in out
    a, b = load(reference / "posterior.pt"), load(run / "posterior.pt")
    assert [k for k in a["net"] if not torch.equal(a["net"][k], b["net"][k])] == []
    assert torch.equal(a["gate_logits"], b["gate_logits"]) and a["mode"] == b["mode"]
    clock = ("images_per_s", "seconds")

    def rows(path: Path) -> list[dict]:
        lines = (path / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if k not in clock} for x in lines]

    assert rows(reference) == rows(run)


def test_sampling_under_torchrun_equals_one_process(
    tmp_path: Path, reference: Path, isolated_data_env: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    shutil.copytree(reference, one)
    shutil.copytree(reference, two)
    _, expected = sample(SampleConfig(run=one, n=12, top_k=2, device="cpu", progress=False))
    args = ("sample", "--run", two, "--n", "12", "--top-k", "2", "--device", "cpu")
    assert_ok(torchrun(*args, "--no-progress", cwd=tmp_path, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT))  # fmt: skip
    lines = (two / "samples.jsonl").read_text().splitlines()
    got = [json.loads(line) for line in lines]
    assert len(got) == len(expected) > 1  # written once, every candidate
    timed = ("time", "latency_ms_est")  # wall-clock measurements, not results
    without_time = [{k: v for k, v in r.items() if k not in timed} for r in expected]
    assert [{k: v for k, v in r.items() if k not in timed} for r in got] == without_time
    assert sorted(p.name for p in (two / "export").iterdir()) == ["rank-1", "rank-2"]


def _rank_pids(proc: subprocess.Popen) -> dict[int, int]:
    """The pid of each rank of a torchrun job, read from the RANK in its environment."""
    deadline, ranks = time.monotonic() + TIMEOUT, {}
    while len(ranks) < 2 and time.monotonic() < deadline:
        for pid in _descendants(proc.pid):
            with contextlib.suppress(OSError):
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if b"TORCHELASTIC_RUN_ID" in b"".join(env):
                    rank = [e for e in env if e.startswith(b"RANK=")]
                    ranks[int(rank[0][5:])] = pid
    return ranks


def _rank_stderr(logs: Path, rank: int) -> list[str]:
    """What rank ``rank`` wrote to stderr (torchrun's --redirects files)."""
    [path] = logs.glob(f"**/attempt_0/{rank}/stderr.log")
    return path.read_text().strip().splitlines()


@pytest.mark.parametrize("how", ["a rank is killed", "Ctrl-C"])
def test_a_job_that_stops_midway_says_so_in_one_line_and_resumes_exactly(
    tmp_path: Path, fake_cifar10: Path, reference: Path, how: str
) -> None:
    run, logs = tmp_path / "run", tmp_path / "logs"
    proc = torchrun(*search_args(fake_cifar10, run), cwd=tmp_path, logs=logs,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for_checkpoint(run, proc)
        if how == "Ctrl-C":  # a terminal's Ctrl-C reaches torchrun, which passes it on
            proc.send_signal(signal.SIGINT)
        else:
            os.kill(_rank_pids(proc)[1], signal.SIGKILL)
        code, _ = finished(proc)
    finally:
        _kill_job(proc)
    _wait_unlocked(run)
    assert code != 0 and not (run / "posterior.pt").exists()
    stderr = _rank_stderr(logs, 0)
    said = [line for line in stderr if line.startswith("bayesnas")]
    assert len(said) == 1 and not any("Traceback" in line for line in stderr), stderr
    expected = "interrupted" if how == "Ctrl-C" else "lost contact with another rank"
    assert said[0].startswith("bayesnas: ") and expected in said[0], said
    assert "the same torchrun command" in said[0] and "--resume" in said[0]

    assert_ok(torchrun("search", "--resume", run, "--no-progress", cwd=tmp_path,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT))  # fmt: skip
    a, b = load(reference / "posterior.pt"), load(run / "posterior.pt")
    assert torch.equal(a["gate_logits"], b["gate_logits"]) and a["mode"] == b["mode"]
    assert [k for k in a["net"] if not torch.equal(a["net"][k], b["net"][k])] == []
