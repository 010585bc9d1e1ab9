"""The command line: help, spaces, and every user error as one line on stderr with exit status 2."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fakedata import write_cifar
from helpers import run_cli

from bayesnas.cli import search as search_command
from bayesnas.config import SearchConfig
from bayesnas.rundir import FORMAT_VERSION

TIMEOUT = 120  # seconds; a search that hangs (e.g. on a network download) fails, not blocks


def assert_user_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2 and exactly one stderr line ``bayesnas: error: ...`` containing ``needles``."""
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("bayesnas: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _third_party_cache(relative: Path) -> bool:
    """HOME and the cache dir, bayesnas's own cache aside: CUDA and torch keep caches there."""
    parts = relative.parts
    return parts[0] == "home" or (parts[0] == "no-cache" and parts[1:2] != ("bayesnas",))


def tree_state(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root`` (lock files and other programs' caches aside) with
    its content hash and mtime."""
    state: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        if path.name == ".lock" or _third_party_cache(path.relative_to(root)):
            continue
        key = str(path.relative_to(root))
        if path.is_dir():
            state[key] = ("dir",)
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[key] = (digest, path.stat().st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fake CIFAR-10 (100 training images) in the real on-disk format."""
    root = tmp_path_factory.mktemp("fake-cifar10")
    write_cifar(root, "cifar10", train=100, test=10)
    return root


def tiny_config(data_root: Path, **changes) -> SearchConfig:
    base = SearchConfig(
        dataset="cifar10",
        space="nb201",
        space_options={"channels": 4, "cells": 1},
        epochs=1,
        batch_size=16,
        eval_size=16,
        device="cpu",
        data_root=str(data_root),
    )
    return base.with_updates(**changes)


def write_run(run_dir: Path, config: SearchConfig) -> None:
    """A run directory as a search leaves it before its first checkpoint: config.json only,
    written by the search's own writer (issue 24: never a test's idea of the file)."""
    from bayesnas import rundir
    from bayesnas.search.run import _saved
    from bayesnas.search.searcher import Searcher

    run_dir.mkdir(parents=True)
    searcher = Searcher(config, run_dir, progress=False)
    rundir.write_json(run_dir / rundir.CONFIG, _saved(searcher))


SEARCH_TINY = ("search", "--channels", "4", "--cells", "1", "--epochs", "1", "--batch-size", "16")


# -- help and listing --------------------------------------------------------------------------


def test_console_script_help_lists_commands_and_options(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("bayesnas")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "bayesnas"]
    result = subprocess.run(
        [*command, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr
    for word in ("search", "spaces", "--help", "--version"):
        assert word in result.stdout


def test_search_help_mentions_every_flag(tmp_path: Path) -> None:
    result = run_cli("search", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    flags = [flag for p in search_command.params for flag in (*p.opts, *p.secondary_opts)]
    assert len(flags) > 30
    missing = [flag for flag in flags if flag not in result.stdout]
    assert not missing, f"search --help does not mention {missing}"


def test_version(tmp_path: Path) -> None:
    from bayesnas import __version__

    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert __version__ in result.stdout


def test_spaces_lists_nb201_and_resnet(tmp_path: Path) -> None:
    result = run_cli("spaces", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert {"nb201", "resnet"} <= set(names), result.stdout


# -- errors before any file is touched ---------------------------------------------------------


BAD_ARGUMENTS = [
    (("--dataset", "no-such-set"), ("unknown dataset", "'no-such-set'", "cifar10")),
    (("--space", "no-such-space"), ("unknown space", "'no-such-space'", "nb201")),
    (("--batch-size", "0"), ("--batch-size", "0")),
    (("--epochs", "-1"), ("--epochs", "-1")),
    (("--tau", "0"), ("--tau", "0<x<=1000")),
    (("--no-such-option",), ("--no-such-option",)),
    (("--preset", "bogus"), ("--preset", "bogus")),
    (("--space", "nb201", "--width", "4"), ("--width", "nb201")),
    (("--space", "resnet", "--channels", "4"), ("--channels", "resnet")),
    (("--channels", "0"), ("--channels", "0")),
    (("--space", "resnet", "--width", "1"), ("--width", "at least 2")),
]


@pytest.mark.parametrize(
    ("args", "needles"), BAD_ARGUMENTS, ids=[" ".join(args) for args, _ in BAD_ARGUMENTS]
)
def test_bad_search_arguments(
    tmp_path: Path, fake_root: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    before = tree_state(tmp_path)
    result = run_cli(
        "search", "--data-root", fake_root, "--out", tmp_path / "run", *args, cwd=tmp_path
    )
    assert_user_error(result, *needles)
    assert not (tmp_path / "run").exists()
    assert tree_state(tmp_path) == before


def test_unknown_command(tmp_path: Path) -> None:
    assert_user_error(run_cli("no-such-command", cwd=tmp_path), "no-such-command")


def test_data_missing_offline(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    before = tree_state(tmp_path)
    result = run_cli(
        "search", "--dataset", "cifar100", "--data-root", empty, "--out", tmp_path / "run",
        *SEARCH_TINY[1:], cwd=tmp_path,
    )  # fmt: skip
    assert_user_error(result, "CIFAR-100", "not found", str(empty))
    assert not (tmp_path / "run").exists()
    assert tree_state(tmp_path) == before, "a failed download left files behind"


def test_unwritable_out(tmp_path: Path, fake_root: Path) -> None:
    (tmp_path / "file").write_text("a regular file\n")
    before = tree_state(tmp_path)
    result = run_cli(
        *SEARCH_TINY, "--data-root", fake_root, "--out", tmp_path / "file" / "run", cwd=tmp_path
    )
    assert_user_error(result, "cannot write", "--out")
    assert tree_state(tmp_path) == before


def test_existing_run_without_force_is_left_alone(tmp_path: Path, fake_root: Path) -> None:
    run = tmp_path / "run"
    write_run(run, tiny_config(fake_root))
    (run / "metrics.jsonl").write_text('{"epoch": 1}\n')
    (run / "checkpoint.pt").write_bytes(b"an earlier checkpoint")
    os.utime(run / "config.json", ns=(1_000_000_000, 1_000_000_000))
    before = tree_state(tmp_path)
    result = run_cli(*SEARCH_TINY, "--data-root", fake_root, "--out", run, cwd=tmp_path)
    assert_user_error(result, str(run), "--resume", "--force")
    assert tree_state(tmp_path) == before


# -- errors of --resume ------------------------------------------------------------------------


def test_resume_of_a_directory_that_is_no_run(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a run\n")
    before = tree_state(tmp_path)
    for name in ("other", "missing"):
        result = run_cli("search", "--resume", tmp_path / name, cwd=tmp_path)
        assert_user_error(result, str(tmp_path / name), "not a bayesnas run")
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize(
    ("contents", "needle"),
    [
        (b"{not json", "config.json"),
        (b'{"something": "else"}\n', "config.json"),
        (b'{"config": {"epochs": "x"}}', "config.json"),
        (b'{"config": {"no_such_field": 1}}', "unknown fields"),
    ],
    ids=["not-json", "no-config", "wrong-type", "unknown-field"],
)
def test_resume_with_corrupt_config(tmp_path: Path, contents: bytes, needle: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(contents)
    before = tree_state(tmp_path)
    result = run_cli("search", "--resume", run, cwd=tmp_path)
    assert_user_error(result, needle)
    assert tree_state(tmp_path) == before


def test_resume_with_corrupt_checkpoint(tmp_path: Path, fake_root: Path) -> None:
    run = tmp_path / "run"
    write_run(run, tiny_config(fake_root))
    (run / "checkpoint.pt").write_bytes(os.urandom(4096))
    before = tree_state(tmp_path)
    result = run_cli("search", "--resume", run, "--no-progress", cwd=tmp_path)
    assert_user_error(result, "checkpoint.pt", "not a readable checkpoint")
    assert tree_state(tmp_path) == before


def test_resume_with_a_checkpoint_of_another_config(tmp_path: Path, fake_root: Path) -> None:
    run = tmp_path / "run"
    write_run(run, tiny_config(fake_root))
    other = tiny_config(fake_root, seed=7, epochs=3)
    torch.save(
        {"format": FORMAT_VERSION, "kind": "checkpoint", "config": other.to_json(), "epoch": 0},
        run / "checkpoint.pt",
    )
    before = tree_state(tmp_path)
    result = run_cli("search", "--resume", run, "--no-progress", cwd=tmp_path)
    assert_user_error(result, "checkpoint.pt", "another configuration")
    assert tree_state(tmp_path) == before


@pytest.mark.parametrize(
    "extra",
    [
        ("--epochs", "3"),
        ("--out", "elsewhere"),
    ],
)
def test_options_with_resume_are_refused(
    tmp_path: Path, fake_root: Path, extra: tuple[str, str]
) -> None:
    run = tmp_path / "run"
    write_run(run, tiny_config(fake_root))
    before = tree_state(tmp_path)
    result = run_cli("search", "--resume", run, *extra, cwd=tmp_path)
    assert_user_error(result, extra[0], "cannot change a run being resumed")
    assert tree_state(tmp_path) == before


def test_second_search_on_a_locked_run_is_refused(tmp_path: Path, fake_root: Path) -> None:
    run = tmp_path / "run"
    write_run(run, tiny_config(fake_root))
    before = tree_state(tmp_path)
    with open(run / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("search", "--resume", run, "--no-progress", cwd=tmp_path)
    assert_user_error(result, "another search", str(run))
    assert tree_state(tmp_path) == before
