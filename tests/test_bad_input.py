"""Bad input on a real run (issue 24, defects 3, 4, 5, 9 and 10): huge sizes, epochs and draws
refused before any data is read, damaged run files and a lock held by another command, each one
line that names the option or file and what to do, or one note that says what is true.

Every run is a copy of the real tiny run of ``tests/realrun.py``, changed the way a user's disk
or a user would change it; the CLI runs in-process (``helpers.run_cli``), as a user sees it.
"""

from __future__ import annotations

import fcntl
import json
import pickle
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import run_cli

from bayesnas.config import SearchConfig
from bayesnas.errors import UserError
from bayesnas.selection.sample import SampleConfig
from bayesnas.train.config import resolve_config

pytest_plugins = ["realrun"]  # real_run, run_copy, search_args

DATA_ROOT = Path("/usr/share/datasets")  # the real run's data (tests/realrun.py)
ALL_CONV3 = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
    "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
TRAIN = ("train", "--arch", ALL_CONV3, "--dataset", "fashion-mnist", "--data-root", DATA_ROOT)
TRAIN_TINY = (*TRAIN, "--channels", "4", "--cells", "1", "--train-size", "64", "--batch-size", "32")
QUICK = 20.0  # seconds: a refusal reads no data and builds no network


def one_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2 and exactly one ``bayesnas: error:`` line on stderr, holding every needle."""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("bayesnas: error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def notes(result: subprocess.CompletedProcess) -> list[str]:
    """The ``note:`` lines of a command that succeeded without a traceback."""
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    return [line for line in (result.stdout + result.stderr).splitlines() if "note:" in line]


def edit_config(run: Path, **changes: object) -> None:
    """Change the search configuration in the run's own config.json."""
    saved = json.loads((run / "config.json").read_text())
    saved["config"].update(changes)
    (run / "config.json").write_text(json.dumps(saved, indent=2) + "\n")


# -- 3, 5, 10: sizes a real run could use, refused before any data is read ----------------------


HUGE = [
    (("--channels", "1000000"), ("--channels", "1000000", "1024")),
    (("--cells", "65"), ("--cells", "65", "64")),
    (("--epochs", "99999999999999999999"), ("--epochs", "100000")),
    (("--space", "resnet50", "--bottlenecks", "7"), ("--bottlenecks", "6")),
]


@pytest.mark.parametrize(("args", "needles"), HUGE, ids=[" ".join(a) for a, _ in HUGE])
def test_huge_search_sizes_are_one_line(
    search_args, tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    start = time.monotonic()
    result = run_cli(*search_args(tmp_path / "run"), *args, cwd=tmp_path)
    one_line(result, *needles)
    assert time.monotonic() - start < QUICK
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--channels", "1000000"), ("--channels", "1024")),
        (("--cells", "1000"), ("--cells", "64")),
        (("--epochs", "99999999999999999999"), ("--epochs", "100000")),
        (("--seed", "-1"), ("--seed", "4294967295")),
    ],
    ids=["channels", "cells", "epochs", "seed"],
)
def test_huge_train_sizes_and_a_negative_seed_are_one_line(
    tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    start = time.monotonic()
    result = run_cli(*TRAIN, *args, "--out", tmp_path / "run", "--no-progress", cwd=tmp_path)
    one_line(result, *needles)
    assert time.monotonic() - start < QUICK
    assert not (tmp_path / "run").exists()


def test_the_bounds_hold_for_the_library_too() -> None:
    with pytest.raises(UserError, match="--channels must be at most 1024 in space nb201"):
        SearchConfig(space_options={"channels": 1_000_000}).validated()
    with pytest.raises(UserError, match=r"--epochs must lie in \[0, 100000\]"):
        SearchConfig(epochs=10**20).validated()
    with pytest.raises(UserError, match=r"--dense-layers must be at most 24"):
        SearchConfig(space="densenet121", space_options={"dense_layers": 25}).validated()
    arch = {"arch": ALL_CONV3, "dataset": "fashion-mnist", "data_root": DATA_ROOT}
    with pytest.raises(UserError, match="--channels must be at most 1024"):
        resolve_config(**arch, channels=1_000_000)
    with pytest.raises(UserError, match="--epochs must be at most 100000"):
        resolve_config(**arch, epochs=10**20)
    with pytest.raises(UserError, match="--seed"):
        resolve_config(**arch, seed=-1)
    with pytest.raises(UserError, match=r"--n must lie in \[1, 1000000\]"):
        SampleConfig(n=10**12).validated()


def test_sample_n_beyond_what_a_run_could_score_is_one_line(run_copy: Path) -> None:
    before = (run_copy / "samples.jsonl").read_bytes()
    start = time.monotonic()
    result = run_cli("sample", "--run", run_copy, "--n", "1000000000000", cwd=run_copy.parent)
    one_line(result, "--n", "1000000")
    assert time.monotonic() - start < QUICK
    assert (run_copy / "samples.jsonl").read_bytes() == before


def test_a_huge_size_in_a_run_being_resumed_or_drawn_is_one_line(run_copy: Path) -> None:
    edit_config(run_copy, space_options={"channels": 1_000_000, "cells": 1})
    (run_copy / "posterior.pt").unlink()  # so that --resume has something to continue
    start = time.monotonic()
    result = run_cli("search", "--resume", run_copy, "--no-progress", cwd=run_copy.parent)
    one_line(result, "config.json", "--channels must be at most 1024", "cannot resume")
    result = run_cli("plot", "--run", run_copy, cwd=run_copy.parent)
    one_line(result, "config.json", "--channels must be at most 1024", "restore")
    assert time.monotonic() - start < QUICK


# -- 4: damaged run files where the run is read ------------------------------------------------


def test_a_config_json_that_is_not_utf8(run_copy: Path) -> None:
    (run_copy / "config.json").write_bytes(b"\xff\xfe" + (run_copy / "config.json").read_bytes())
    said = notes(run_cli("summary", "--run", run_copy, cwd=run_copy.parent))
    assert said == ["note: config.json missing, or not JSON in UTF-8: configuration taken from "
                    "posterior.pt"]  # fmt: skip
    (run_copy / "posterior.pt").unlink()  # nothing else to take the configuration from
    result = run_cli("summary", "--run", run_copy, cwd=run_copy.parent)
    one_line(result, str(run_copy), "config.json", "restore it")
    result = run_cli("search", "--resume", run_copy, "--no-progress", cwd=run_copy.parent)
    one_line(result, str(run_copy / "config.json"), "cannot resume")


def test_a_line_of_samples_jsonl_that_is_not_utf8(run_copy: Path) -> None:
    path = run_copy / "samples.jsonl"
    rows = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(rows[0] + b'{"rank": "\xff"}\n' + b"".join(rows[1:]))
    result = run_cli("plot", "--run", run_copy, cwd=run_copy.parent)
    one_line(result, str(path), "line 2", "repair or delete")


@pytest.mark.parametrize("command", ["plot", "summary"])
def test_a_config_json_of_another_space(run_copy: Path, command: str) -> None:
    edit_config(run_copy, space="darts", space_options={"channels": 4, "cells": 5})
    result = run_cli(command, "--run", run_copy, cwd=run_copy.parent)
    one_line(result, "config.json names space darts", "posterior.pt", "nb201", "restore")
    edit_config(run_copy, space="resnet")  # nb201's options under a space that has none of them
    result = run_cli(command, "--run", run_copy, cwd=run_copy.parent)
    one_line(result, "config.json", "--channels does not apply to space 'resnet'", "restore")


# -- 9: notes and errors that say what is true, once -------------------------------------------


def _bare_pickle(path: Path) -> None:
    path.write_bytes(pickle.dumps({"format": 1}))


def _sparse_gigabyte(path: Path) -> None:
    with path.open("wb") as f:
        f.truncate(2**30)


@pytest.mark.parametrize("damage", [_bare_pickle, _sparse_gigabyte], ids=["pickle", "sparse"])
def test_an_unreadable_posterior_is_one_note_not_an_unfinished_run(run_copy: Path, damage) -> None:
    (run_copy / "posterior.pt").unlink()
    damage(run_copy / "posterior.pt")
    result = run_cli("summary", "--run", run_copy, cwd=run_copy.parent)
    said = notes(result)
    assert len(said) == 1 and "posterior.pt is not a readable posterior" in said[0], said
    assert "not finished" not in result.stdout and "(posterior.pt unreadable)" in result.stdout


def _directory(path: Path) -> None:
    path.mkdir()


def _symlink_loop(path: Path) -> None:
    path.symlink_to(path.name)


@pytest.mark.parametrize("damage", [_directory, _symlink_loop], ids=["directory", "loop"])
def test_a_posterior_that_is_no_file_is_named_and_resume_agrees(run_copy: Path, damage) -> None:
    path = run_copy / "posterior.pt"
    path.unlink()
    damage(path)
    what = "a directory" if path.is_dir() else "a symbolic link"
    advice = f"move it away, then `bayesnas search --resume {run_copy}` writes it again"
    for command in ("sample", "search"):
        flag = "--run" if command == "sample" else "--resume"
        result = run_cli(command, flag, run_copy, "--no-progress", cwd=run_copy.parent)
        one_line(result, f"{path} is {what}", advice)
    result = run_cli("summary", "--run", run_copy, cwd=run_copy.parent)
    said = notes(result)
    assert len(said) == 1 and f"{path} is {what}" in said[0] and advice in said[0], said
    assert "not finished" not in result.stdout
    if what == "a directory":  # the advice holds: moved away, the resume writes it again
        path.rename(run_copy.parent / "moved")
        result = run_cli("search", "--resume", run_copy, "--no-progress", cwd=run_copy.parent)
        assert result.returncode == 0, result.stderr
        assert path.is_file()


def test_a_training_refused_by_the_lock_is_not_called_a_search(run_copy: Path) -> None:
    with (run_copy / ".lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli(*TRAIN_TINY, "--out", run_copy, "--no-progress", cwd=run_copy.parent)
    line = one_line(result, f"is running in {run_copy}", "training", "wait for it")
    assert "another search is running" not in line
    assert not (run_copy / "result.json").exists()


# -- undecodable files where they are read: never a traceback, never lost --------------------


def test_sample_keeps_an_undecodable_samples_jsonl_line_and_appends(run_copy: Path) -> None:
    path = run_copy / "samples.jsonl"
    damaged = path.read_bytes() + b'{"note": "\xff"}\n'
    path.write_bytes(damaged)
    result = run_cli("sample", "--run", run_copy, "--n", "2", "--top-k", "0", "--no-progress",
                     cwd=run_copy.parent)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    after = path.read_bytes()
    assert after.startswith(damaged) and len(after.splitlines()) > len(damaged.splitlines())


def test_train_resume_of_an_undecodable_config_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "train-run"
    run.mkdir()
    (run / "config.json").write_bytes(b'{"command": "train", "config": "\xff"}')
    result = run_cli("train", "--resume", run, "--no-progress", cwd=tmp_path)
    one_line(result, "config.json", "cannot resume")


def test_lookup_orders_exports_by_rank_and_skips_an_unreadable_one(run_copy: Path) -> None:
    from bayesnas.selection.lookup import run_architectures

    export = run_copy / "export"
    first = json.loads((export / "rank-1" / "architecture.json").read_text())
    for extra in export.glob("rank-*"):
        if extra.name != "rank-1":
            shutil.rmtree(extra)
    others = [ALL_CONV3, ALL_CONV3.replace("3x3", "1x1"), ALL_CONV3.replace("conv_3x3", "pool")]
    cells = [c.replace("nor_pool", "avg_pool_3x3") for c in others]
    cells = [c for c in cells if c != first["architecture"]][:2]
    for rank, arch in zip((10, 2), cells, strict=True):
        folder = export / f"rank-{rank}"
        folder.mkdir()
        (folder / "architecture.json").write_text(json.dumps({**first, "architecture": arch}))
    (export / "rank-3").mkdir()
    (export / "rank-3" / "architecture.json").write_bytes(b"\xff\xfe")
    sources = [source for _, source, _ in run_architectures(run_copy)]
    exported = [s for s in sources if s.startswith("rank-")]
    assert exported == ["rank-1", "rank-2", "rank-10"]
