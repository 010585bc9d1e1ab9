"""Trust (issue 9): no code runs from a file, --force ships nothing stale, exports carry their
preprocessing, SIGTERM and a full disk lose no work, append-only files heal, bad input is one
line, the figures do not mislead, and a resume restores the thread count.

Fast: a fake CIFAR-10 of 384 images and a 4-channel, one-cell NB201 net, run in-process through
``bayesnas.cli.main`` (exit status and stderr as a user sees them); a subprocess only for SIGTERM.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyro
import pytest
import torch
from fakedata import write_cifar
from helpers import cli

from bayesnas import rundir
from bayesnas.cli import sample as sample_command
from bayesnas.config import SearchConfig
from bayesnas.data import search_data
from bayesnas.device import set_rng_state
from bayesnas.errors import Interrupted, UserError
from bayesnas.export import export_deployable, load_exported
from bayesnas.report import figures as plots
from bayesnas.report import load_run, plot_run, summary_text
from bayesnas.search import Searcher, run_search
from bayesnas.selection.sample import SampleConfig, sample

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300
pytestmark = pytest.mark.usefixtures("one_thread")  # CI's searches: one intra-op thread


# -- helpers -----------------------------------------------------------------------------------


def one_error_line(code: int, err: str, *needles: str) -> str:
    """Exit 2 and one ``bayesnas: error:`` line (after any ``run directory:`` line)."""
    lines = [line for line in err.splitlines() if not line.startswith("run directory:")]
    assert "Traceback" not in err, err
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("bayesnas: error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
        for p in sorted(root.rglob("*"))
    }


def search_args(data_root: Path | None, out: Path, *extra: str | Path, epochs: int = 2) -> list:
    """A tiny, seeded search: 6 steps of 32 images per epoch, a checkpoint after every step."""
    root = ["--data-root", data_root] if data_root is not None else []
    return [
        "search", "--dataset", "cifar10", *root, "--channels", "4", "--cells", "1",
        "--batch-size", "32", "--val-size", "64", "--eval-size", "64", "--epochs", str(epochs),
        "--seed", "3", "--device", "cpu", "--checkpoint-minutes", "0", "--no-progress",
        "--out", out, *extra,
    ]  # fmt: skip


class Payload:
    """A pickle that creates ``marker`` when unpickled: what an attacker plants in a file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture(scope="module")
def fake_cifar10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fake-cifar10")
    write_cifar(root, "cifar10", train=384, test=10)
    return root


@pytest.fixture(autouse=True)
def data_env(fake_cifar10: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data found through $BAYESNAS_DATA, as for the ``finished`` run."""
    monkeypatch.setenv("BAYESNAS_DATA", str(fake_cifar10))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, fake_cifar10: Path) -> Path:
    """A finished, sampled and plotted run, its data found through $BAYESNAS_DATA (not given).

    --warmup 0.5 keeps the gates frozen (their logits tied) through epoch 1 of 2.
    """
    base = tmp_path_factory.mktemp("finished")
    run = base / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("BAYESNAS_DATA", str(fake_cifar10))
            config = SearchConfig(
                dataset="cifar10",
                space_options={"channels": 4, "cells": 1},
                epochs=2,
                batch_size=32,
                val_size=64,
                eval_size=64,
                warmup=0.5,
                seed=3,
                device="cpu",
            ).validated()
            run_search(config, run, progress=False)
            sample(SampleConfig(run=run, n=6, top_k=3, device="cpu", progress=False))
            plot_run(run, None, "png")
    finally:
        torch.set_num_threads(before)
    return run


def copy_run(run: Path, dst: Path) -> Path:
    return Path(shutil.copytree(run, dst))


# -- 1. no code from files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("planted", "command"),
    [
        ("posterior.pt", "summary"),
        ("posterior.pt", "plot"),
        ("posterior.pt", "sample"),
        ("checkpoint.pt", "search --resume"),
    ],
)
def test_a_pickle_payload_in_a_run_file_never_runs(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture, planted: str, command: str
) -> None:
    run = copy_run(finished, tmp_path / "run")
    marker = tmp_path / "pwned"
    payload = {"format": 1, "kind": planted[:-3], "config": {}, "evil": Payload(marker)}
    if planted == "checkpoint.pt":
        (run / "posterior.pt").unlink()  # an unfinished run, so that --resume reads the checkpoint
    torch.save(payload, run / planted)
    args = {
        "summary": ["summary", "--run", run],
        "plot": ["plot", "--run", run],
        "sample": [
            "sample",
            "--run",
            run,
            "--n",
            "2",
            "--top-k",
            "0",
            "--device",
            "cpu",
            "--no-progress",
        ],
        "search --resume": ["search", "--resume", run, "--no-progress"],
    }[command]
    code, _, err = cli(capsys, *args)
    assert not marker.exists(), f"`bayesnas {command}` ran code from {planted}"
    one_error_line(code, err, planted, "not loaded")


def test_a_pickle_payload_in_cifar_data_never_runs(
    fake_cifar10: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = Path(shutil.copytree(fake_cifar10, tmp_path / "data"))
    marker = tmp_path / "pwned"
    (data / "cifar-10-batches-py" / "data_batch_1").write_bytes(
        pickle.dumps(Payload(marker), protocol=2)
    )
    code, _, err = cli(capsys, *search_args(data, tmp_path / "run"))
    assert not marker.exists(), "reading CIFAR batches ran code"
    one_error_line(code, err, "data_batch_1", "not loaded")
    assert not (tmp_path / "run").exists()


def test_run_files_are_plain_data_and_old_runs_still_load(finished: Path, tmp_path: Path) -> None:
    for name in ("checkpoint.pt", "posterior.pt"):  # no allow-list needed: tensors and plain data
        assert torch.serialization.get_unsafe_globals_in_checkpoint(finished / name) == []
        torch.load(finished / name, map_location="cpu", weights_only=True)
    # bayesnas 0.1 pickled NumPy's RNG state and torch's version class: still loaded, as data
    legacy = {
        "format": 1,
        "kind": "checkpoint",
        "rng": {"pyro": pyro.util.get_rng_state()},
        "versions": {"torch": torch.__version__},
    }
    torch.save(legacy, tmp_path / "checkpoint.pt")
    loaded = rundir.load_torch(tmp_path / "checkpoint.pt", "checkpoint")
    np.testing.assert_array_equal(
        loaded["rng"]["pyro"]["numpy"][1], legacy["rng"]["pyro"]["numpy"][1]
    )
    set_rng_state(loaded["rng"])


# -- 2. --force ships nothing stale ------------------------------------------------------------


def test_force_leaves_nothing_of_the_old_run(
    finished: Path, fake_cifar10: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = copy_run(finished, tmp_path / "run")
    assert (run / "export" / "rank-1").is_dir() and (run / "plots").is_dir()
    code, _, err = cli(capsys, *search_args(fake_cifar10, run, "--force", epochs=1))
    assert code == 0, err
    left = sorted(p.name for p in run.iterdir())
    assert left == [".lock", "checkpoint.pt", "config.json", "metrics.jsonl", "posterior.pt",
                    "steps.jsonl"]  # fmt: skip
    code, _, err = cli(capsys, "export", "--run", run, "--rank", "1")
    one_error_line(code, err, "export/rank-1 does not exist")  # the old network is not shipped


def test_force_refuses_to_delete_what_bayesnas_did_not_write(
    finished: Path, fake_cifar10: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = copy_run(finished, tmp_path / "run")
    (run / "notes.txt").write_text("mine\n")
    before = tree(run)
    code, _, err = cli(capsys, *search_args(fake_cifar10, run, "--force", epochs=1))
    one_error_line(code, err, "notes.txt", "--force")
    assert tree(run) == before


# -- 3. exports take images as users have them -------------------------------------------------


def test_exports_normalise_inside(finished: Path, fake_cifar10: Path) -> None:
    folder = finished / "export" / "rank-1"
    model = load_exported(folder)
    row = json.loads((folder / "metrics.json").read_text())
    config = SearchConfig.from_json(json.loads((finished / "config.json").read_text())["config"])
    _, val, _, _ = search_data(config, torch.device("cpu"))
    with torch.no_grad():
        logits = model(val.images)  # uint8, as a user has them
        assert (logits.argmax(1) == val.labels).float().mean().item() == row["val_acc"]
        floats = model(val.images.float() / 255)  # or float in [0, 1]
        assert (floats - logits).abs().max() < 1e-3
    meta = ort.InferenceSession(
        str(export_deployable(folder, "onnx")), providers=["CPUExecutionProvider"]
    ).get_modelmeta()
    props = meta.custom_metadata_map
    assert props["input_range"] == "[0, 1]" and "inside" in props["normalisation"]
    assert json.loads(props["mean"]) == pytest.approx([0.4914, 0.4822, 0.4465])
    readme = (ROOT / "README.md").read_text()
    first = readme[readme.index("```python") :].split("```")[1]
    assert "uint8" in first and "[0, 1]" in first  # the docs' first example says it


# -- 4. SIGTERM is Ctrl-C ----------------------------------------------------------------------


def test_sigterm_checkpoints_and_says_how_to_resume(
    fake_cifar10: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run, err_log = tmp_path / "run", tmp_path / "stderr.txt"
    env = {**os.environ, "BAYESNAS_DATA": str(tmp_path / "none"), "OMP_NUM_THREADS": "1"}
    args = [str(a) for a in search_args(fake_cifar10, run, epochs=20)]
    with err_log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bayesnas", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (run / "checkpoint.pt").is_file():  # the first step's checkpoint
            assert proc.poll() is None, err_log.read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling a file, not synchronising
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
        proc.wait(timeout=TIMEOUT)
    lines = [x for x in err_log.read_text().splitlines() if not x.startswith("run directory:")]
    assert proc.returncode == 143, lines
    assert len(lines) == 1 and "SIGTERM" in lines[0], lines
    assert f"bayesnas search --resume {run}" in lines[0]
    state = rundir.load_torch(run / "checkpoint.pt", "checkpoint")
    assert 0 < state["epoch"] * 6 + state["step_in_epoch"] < 20 * 6
    assert not (run / "posterior.pt").exists()


# -- 5. a full disk ----------------------------------------------------------------------------


class FullDisk:
    """``os.write`` as on a disk that fills up: writes into files whose name contains ``match``
    fail with ENOSPC after ``allow`` such files were written whole, halfway into the next."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, base: Path, match: str, allow: int):
        self.base, self.match, self.allow, self.files = str(base), match, allow, set()
        self.real = os.write
        monkeypatch.setattr(os, "write", self)

    def __call__(self, fd: int, data) -> int:
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return self.real(fd, data)
        if not name.startswith(self.base) or self.match not in Path(name).name:
            return self.real(fd, data)
        self.files.add(name)
        if len(self.files) > self.allow:
            self.real(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


def test_full_disk_in_search_keeps_the_last_checkpoint(
    fake_cifar10: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    run = tmp_path / "run"
    FullDisk(monkeypatch, tmp_path, ".checkpoint.pt.", allow=3)  # three steps' checkpoints
    code, _, err = cli(capsys, *search_args(fake_cifar10, run))
    line = one_error_line(code, err, str(run / "checkpoint.pt"), "no space left", "needs")
    assert f"--resume {run}" in line
    monkeypatch.undo()
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]  # nothing half-written
    state = rundir.load_torch(run / "checkpoint.pt", "checkpoint")
    assert (state["epoch"], state["step_in_epoch"]) == (0, 3)  # the last good checkpoint
    code, _, err = cli(capsys, "search", "--resume", run, "--no-progress")
    assert code == 0, err


def test_full_disk_in_plot_leaves_the_old_figures(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    run = copy_run(finished, tmp_path / "run")
    before = tree(run)
    FullDisk(monkeypatch, tmp_path, "-", allow=2)  # the third figure finds the disk full
    code, _, err = cli(capsys, "plot", "--run", run, "--format", "svg")
    one_error_line(code, err, str(run / "plots"), "no space left", "needs")
    monkeypatch.undo()
    assert tree(run) == before  # no partial figure, no staging folder, the png figures intact
    shutil.rmtree(run / "plots")
    FullDisk(monkeypatch, tmp_path, "-", allow=2)
    code, _, err = cli(capsys, "plot", "--run", run)
    one_error_line(code, err, "no space left")
    assert not (run / "plots").exists()  # a new plots/ is not left half-made


def test_full_disk_in_an_append_undoes_the_partial_line(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"epoch": 1}\n')
    FullDisk(monkeypatch, tmp_path, "metrics", allow=0)
    with pytest.raises(UserError, match="no space left .* needs"):
        rundir.append_metrics(tmp_path, {"epoch": 2, "padding": "x" * 100})
    monkeypatch.undo()
    assert path.read_text() == '{"epoch": 1}\n'


# -- 6. append-only files heal -----------------------------------------------------------------


def test_a_torn_last_line_is_repaired_before_appending(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = copy_run(finished, tmp_path / "run")
    earlier = len((run / "samples.jsonl").read_text().splitlines())
    with (run / "samples.jsonl").open("a") as f:
        f.write('{"sampler": "posterior", "rank": 1, "val_')
    code, _, err = cli(capsys, "sample", "--run", run, "--n", "3", "--top-k", "1",
                       "--device", "cpu", "--no-progress")  # fmt: skip
    assert code == 0, err
    assert "torn last line" in err and "samples.jsonl" in err  # with a note
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert 1 <= len(rows) - earlier <= 3
    code, _, err = cli(capsys, "plot", "--run", run)
    assert code == 0, err
    for name in ("metrics.jsonl", "steps.jsonl"):
        path = run / name
        good = path.read_text()
        path.write_text(good + '{"epoch": 3, "el')
        if name == "metrics.jsonl":
            rundir.append_metrics(run, {"epoch": 3})
        else:
            rundir.append_jsonl(path, [{"epoch": 3}])
        assert path.read_text() == good + '{"epoch": 3}\n'


def test_sample_n_3_needs_no_top_k(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = copy_run(finished, tmp_path / "run")
    code, out, err = cli(capsys, "sample", "--run", run, "--n", "3", "--device", "cpu",
                         "--no-progress")  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert rows[-1]["top_k"] == 3 and f"top {rows[-1]['rank']} exported" in out


def test_malformed_sample_rows_get_one_warning_each(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = copy_run(finished, tmp_path / "run")
    lines = (run / "samples.jsonl").read_text().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    first["architecture"] = "|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    second["val_acc"] = "high"
    lines[:2] = [json.dumps(first), json.dumps(second)]
    (run / "samples.jsonl").write_text("\n".join(lines) + "\n")
    code, _, err = cli(capsys, "plot", "--run", run)
    assert code == 0 and "Traceback" not in err, err
    warnings = [line for line in err.splitlines() if "skipping row" in line]
    assert len(warnings) == 2 and "row 1" in warnings[0] and "row 2" in warnings[1], err


# -- 7. validation -----------------------------------------------------------------------------

BAD = [
    (("--seed", "-1"), "--seed"),
    (("--seed", str(2**32)), "--seed"),
    (("--gate-lr", "nan"), "--gate-lr"),
    (("--lr", "inf"), "--lr"),
    (("--checkpoint-minutes", "nan"), "--checkpoint-minutes"),
    (("--checkpoint-minutes", "-1"), "--checkpoint-minutes"),
    (("--crop-pad", "33"), "--crop-pad 33 is larger than the 32-pixel"),
    (("--cutout", "40"), "--cutout 40 is larger than the 32-pixel"),
]


@pytest.mark.parametrize(("args", "needle"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_search_values_are_one_line(
    fake_cifar10: Path, tmp_path: Path, capsys: pytest.CaptureFixture, args, needle
) -> None:
    code, _, err = cli(capsys, *search_args(fake_cifar10, tmp_path / "run"), *args)
    one_error_line(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_force_with_resume_is_refused(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = copy_run(finished, tmp_path / "run")
    (run / "posterior.pt").unlink()
    before = tree(run)
    code, _, err = cli(capsys, "search", "--resume", run, "--force", "--no-progress")
    one_error_line(code, err, "--force and --resume")
    assert tree(run) == before


def test_a_missing_data_root_is_an_error_not_a_fallback(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    missing = tmp_path / "nonexistent"
    for dataset in ("fashion-mnist", "cifar10"):  # Debian's copy is not used instead
        code, _, err = cli(
            capsys, "search", "--dataset", dataset, "--data-root", missing, "--epochs", "1",
            "--channels", "4", "--cells", "1", "--train-size", "64", "--val-size", "64",
            "--device", "cpu", "--no-progress", "--out", tmp_path / "run",
        )  # fmt: skip
        one_error_line(code, err, str(missing), "does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created


def test_the_recorded_data_root_is_the_one_read(finished: Path, fake_cifar10: Path) -> None:
    config = json.loads((finished / "config.json").read_text())["config"]
    assert config["data_root"] == str(fake_cifar10.resolve())  # found via $BAYESNAS_DATA


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--seed", "-1"), "--seed"),
        (("--seed", str(2**32)), "--seed"),
        (("--drop-rate", "0.3"), "--drop-rate applies to --sampler fixed-dropout only"),
    ],
)
def test_bad_sample_values_are_one_line(
    finished: Path, capsys: pytest.CaptureFixture, args, needle
) -> None:
    before = tree(finished)
    code, _, err = cli(capsys, "sample", "--run", finished, "--no-progress", *args)
    one_error_line(code, err, needle)
    assert tree(finished) == before
    with pytest.raises(UserError, match="--seed"):
        SampleConfig(seed=-1).validated()


# -- 8. day one --------------------------------------------------------------------------------


def test_help_and_plain_invocation(capsys: pytest.CaptureFixture) -> None:
    code, out, err = cli(capsys)
    assert code == 0 and out.startswith("Usage: bayesnas") and "error" not in out + err
    code, out, _ = cli(capsys, "search", "--help")
    text = "".join(out.split())  # wrapping aside
    # options that reject 0 do not admit it (--epochs 0 is a prior-only search)
    assert "x>=0" not in text.split("--crop-pad")[0].split("--batch-size")[1]
    epochs = (
        "[default:50;quick:3,quickdarts:2,quickresnet:4,cpu:3,cpudarts:10,zero-cost:0,paper:1800,"
        "paper-mi:1800,bench:50]"
        "[0<=x<=100000]"
    )
    gate_lr = "[default:0.025;quick:1.0,cpu:1.0,cpudarts:0.5,paper:0.01,paper-mi:0.01,bench:0.1]"
    assert epochs in text and gate_lr in text  # --epochs, --gate-lr
    helpless = [p.name for p in sample_command.params if not getattr(p, "help", None)]
    assert helpless == [], f"sample options without help: {helpless}"
    code, out, _ = cli(capsys, "spaces")
    assert code == 0 and "``" not in out and ":class:" not in out


def test_run_files_honour_the_umask(finished: Path, tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    files = [p for p in finished.rglob("*") if p.is_file() and p.name != ".lock"]
    assert len(files) > 10
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in files), [
        (p.name, oct(p.stat().st_mode)) for p in files
    ]
    old = os.umask(0o027)
    try:
        rundir.write_json(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o640


def test_summary_after_a_torn_metrics_line_names_its_epoch(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    rows = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text(rows[0] + "\n" + rows[1][:40])  # epoch 2's row torn
    text = summary_text(run)
    elbo = json.loads(rows[0])["elbo"]
    assert "2 / 2 (finished)" in text
    assert re.search(rf"ELBO of epoch 1\s+{elbo:.4f}", text), text
    assert "final ELBO" not in text


def test_readme_says_what_a_search_costs_and_links_security() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "20 hours" in readme and "docs/benchmarks.md" in readme
    assert "longer than the search" in readme
    assert "docs/security.md" in readme and (ROOT / "docs" / "security.md").is_file()


# -- 9. figures --------------------------------------------------------------------------------


def test_no_mode_yet_during_a_gate_warm_up(finished: Path) -> None:
    first, second = rundir.read_metrics(finished)
    assert first["gates"]["mode"] is None and first["val_acc"] is None  # tied: nothing scored
    assert first["mode"].startswith("no mode yet") and "mode" not in second
    assert second["gates"]["mode"] and second["val_acc"] is not None
    run = copy_run(finished, finished.parent / "running")
    try:
        (run / "posterior.pt").unlink()
        (run / "metrics.jsonl").write_text(json.dumps(first) + "\n")
        text = summary_text(run)
        assert re.search(r"posterior mode\s+no mode yet", text) and "mode val" not in text
    finally:
        shutil.rmtree(run)


def test_figure_1_has_per_step_shape_and_honest_axes(finished: Path) -> None:
    run = load_run(finished)
    assert len(run.steps) == 12  # every step of this short search
    lr = [r["lr"] for r in run.steps]
    assert lr == sorted(lr, reverse=True) and len(set(lr)) == 12  # the cosine's shape
    assert all(r["weight_prior"] > 0 for r in run.steps)
    fig = plots.training_figure(run.metrics, run.steps)
    loss_ax = fig.axes[0]
    assert loss_ax.get_yscale() == "log" and "nats per image" in loss_ax.get_ylabel()
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert "weight prior / N" in labels and "KL(q || p) / N" in labels
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).draw()
    for ax in fig.axes:
        assert ax.yaxis.get_offset_text().get_text() == "", ax.get_ylabel()


def test_figure_4_weights_by_draws_and_figure_5_uses_the_real_top_k() -> None:
    def row(rank: int, acc: float, draws: int) -> dict:
        return {"sampler": "posterior", "rank": rank, "n": 100, "top_k": 2, "draws": draws,
                "first_draw": rank - 1, "val_acc": acc, "val_nll": 1.0, "params_m": 0.1 * rank,
                "mflops": float(rank), "architecture": "x"}  # fmt: skip

    calls = {"posterior": [row(1, 0.9, 95), row(2, 0.5, 3), row(3, 0.4, 2)]}
    hist_ax = plots.samples_figure(calls).axes[0]
    assert max(p.get_xy()[:, 1].max() for p in hist_ax.patches) == 95  # not 1 candidate
    labels = [t.get_text() for t in plots.cost_figure(calls).axes[1].get_legend().get_texts()]
    assert "posterior: top 2 (exported)" in labels and not any("top 5" in x for x in labels)


# -- 10. the thread count ----------------------------------------------------------------------


def test_a_resume_restores_the_thread_count(
    fake_cifar10: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    config = SearchConfig(
        dataset="cifar10", data_root=str(fake_cifar10), space_options={"channels": 4, "cells": 1},
        epochs=2, batch_size=32, val_size=64, eval_size=64, seed=3, device="cpu",
        checkpoint_minutes=1e9,
    ).validated()  # fmt: skip
    run_search(config, tmp_path / "reference", progress=False)

    step = Searcher._step

    def stop_after_4(self, *args) -> None:  # as Ctrl-C after four steps, in-process
        step(self, *args)
        if self.epoch * self.steps_per_epoch + self.step_in_epoch == 3:
            self._stop_requested = True

    monkeypatch.setattr(Searcher, "_step", stop_after_4)
    with pytest.raises(Interrupted):
        run_search(config, tmp_path / "run", progress=False)
    monkeypatch.undo()
    assert rundir.load_torch(tmp_path / "run" / "checkpoint.pt", "checkpoint")["threads"] == 1

    torch.set_num_threads(2)  # another machine, another OMP_NUM_THREADS
    capsys.readouterr()
    run_search(None, tmp_path / "run", resume=True, progress=False)
    assert "using 1 torch thread(s)" in capsys.readouterr().err
    assert torch.get_num_threads() == 1
    a = rundir.load_torch(tmp_path / "reference" / "posterior.pt", "posterior")
    b = rundir.load_torch(tmp_path / "run" / "posterior.pt", "posterior")
    assert [k for k in a["net"] if not torch.equal(a["net"][k], b["net"][k])] == []
    assert torch.equal(a["gate_logits"], b["gate_logits"])
    for name in ("steps.jsonl",):  # the per-step record resumes exactly too
        assert (tmp_path / "reference" / name).read_text() == (tmp_path / "run" / name).read_text()
